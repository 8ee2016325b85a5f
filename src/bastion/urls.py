from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from bastion.accounts import views as accounts
from bastion.audit import views as audit
from bastion.index import views as index
from bastion.signing import views as signing
from bastion.uploads import views as uploads

handler429 = "bastion.accounts.views.rate_limited"
handler500 = "bastion.outages.server_error"  # a dependency down: 503 naming it, not a 500
# Operators sign in like everyone (password, then the second factor), never on admin's own form.
admin.site.login = accounts.admin_login  # type: ignore[method-assign]
admin.site.site_header = admin.site.site_title = "bastion operators"

urlpatterns = [
    path("healthz", index.healthz),
    path("simple/", index.simple_root),
    path("simple", RedirectView.as_view(url="/simple/", permanent=True)),
    re_path(r"^simple/(?P<project>[^/]+)/$", index.simple_detail),
    re_path(r"^simple/(?P<project>[^/]+)$", index.simple_slashless),
    re_path(r"^pypi/(?P<project>[^/]+)/json/?$", index.pypi_project_json),
    re_path(r"^pypi/(?P<project>[^/]+)/(?P<version>[^/]+)/json/?$", index.pypi_release_json),
    # TUF consistent-snapshot forms (P128), before the plain routes they would otherwise match.
    re_path(r"^files/(?P<directory>[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/)(?P<digest>[0-9a-f]{64})\.(?P<filename>[^/]+)$", signing.consistent_file),  # noqa: E501
    re_path(r"^simple/(?P<project>[^/]+)/(?:(?P<digest>[0-9a-f]{64})\.)?(?P<page>index\.(?:html|json))$", signing.signed_page),  # noqa: E501
    re_path(r"^files/(?P<path>[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/[^/]+)$", index.file_download),
    re_path(r"^legacy/?$", uploads.legacy_upload),
    path("tuf/", include("bastion.signing.urls")),
    path("", include("bastion.projects.urls")),
    path("", include("bastion.tokens.urls")),  # /account/tokens/..., /_/token-leak/
    path("account/history/", audit.account_history),
    path("account/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the language selector
    path("manage/history/", audit.admin_history),
    re_path(r"^manage/project/(?P<project>[^/]+)/history/$", audit.project_history),
    re_path(r"^manage/project/(?P<project>[^/]+)/history\.json$", audit.project_history_feed),
    path("manage/", include("bastion.projects.manage_urls")),
    path("admin/", admin.site.urls),
]
