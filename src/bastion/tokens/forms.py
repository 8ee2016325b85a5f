"""The token creation form: a name, a scope (the whole account or chosen projects), an expiry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from bastion.tokens.services import MAX_NAME_LENGTH

SCOPE_ACCOUNT = "account"
SCOPE_PROJECTS = "projects"


class TokenForm(forms.Form):
    name = forms.CharField(
        label=_("Token name"),
        max_length=MAX_NAME_LENGTH,
        help_text=_(
            "What the token is for, for example “CI of my-project”. Unique among your tokens."
        ),
    )
    scope = forms.ChoiceField(
        label=_("Scope"),
        choices=[
            (SCOPE_ACCOUNT, _("Entire account: every project you may upload to")),
            (SCOPE_PROJECTS, _("Only the projects chosen below")),
        ],
        initial=SCOPE_ACCOUNT,
        widget=forms.RadioSelect,
    )
    projects = forms.MultipleChoiceField(
        label=_("Projects"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The projects on which you are an Owner or a Maintainer."),
    )
    expires = forms.DateField(
        label=_("Expires on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_(
            "Leave empty for a token that does not expire. Otherwise the token stops working "
            "at the start of that day (UTC)."
        ),
    )

    def __init__(
        self, *args: Any, project_choices: Sequence[tuple[str, str]], today: date, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        projects = self.fields["projects"]
        assert isinstance(projects, forms.MultipleChoiceField)
        projects.choices = list(project_choices)
        self.today = today

    def clean_name(self) -> str:
        return str(self.cleaned_data["name"]).strip()

    def clean_expires(self) -> date | None:
        expires: date | None = self.cleaned_data.get("expires")
        if expires is not None and expires <= self.today:
            raise forms.ValidationError(_("Choose a date after today."), code="past")
        return expires

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("scope") == SCOPE_PROJECTS:
            if not cleaned.get("projects"):
                self.add_error("projects", _("Choose at least one project, or the entire account."))
        else:
            cleaned["projects"] = []
        return cleaned

    def expires_at(self) -> datetime | None:
        """The moment the token stops working: the start (UTC) of the chosen day."""
        expires: date | None = self.cleaned_data.get("expires")
        return datetime.combine(expires, time.min, tzinfo=UTC) if expires else None
