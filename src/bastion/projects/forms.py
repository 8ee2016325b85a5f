"""Forms of the /manage/ pages: they parse and bound input; services decide."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from bastion.projects.models import RoleName
from bastion.projects.services import MAX_REASON_LENGTH

ROLE_CHOICES = [
    (RoleName.MAINTAINER.value, _("Maintainer: uploads releases")),
    (RoleName.OWNER.value, _("Owner: uploads and manages the project")),
]


class InviteForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    role = forms.ChoiceField(label=_("Role"), choices=ROLE_CHOICES, initial=RoleName.MAINTAINER)


class ChangeRoleForm(forms.Form):
    username = forms.CharField(widget=forms.HiddenInput, max_length=150)
    role = forms.ChoiceField(label=_("Role"), choices=ROLE_CHOICES)


class UsernameForm(forms.Form):
    """A collaborator or invitee named by a hidden field of a one-button form."""

    username = forms.CharField(widget=forms.HiddenInput, max_length=150)


class YankForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (optional)"),
        required=False,
        max_length=MAX_REASON_LENGTH,
        help_text=_("Shown to installers, e.g. “broken on Windows, use 1.2.1”."),
    )


class ConfirmForm(forms.Form):
    """Type exactly the name of what is deleted (the service checks it again)."""

    confirm = forms.CharField(label=_("Type it to confirm"), max_length=300, strip=True)

    def __init__(self, *args: Any, expected: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.fields["confirm"].help_text = format_html(
            str(_("Type <code>{}</code> exactly.")), expected
        )
        self.fields["confirm"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_confirm(self) -> str:
        typed = str(self.cleaned_data["confirm"])
        if typed != self.expected:
            raise forms.ValidationError(
                _("This does not match “%(expected)s”."), params={"expected": self.expected}
            )
        return typed
