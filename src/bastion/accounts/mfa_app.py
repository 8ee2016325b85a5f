"""allauth's mfa app with bastion's one change (listed in INSTALLED_APPS in its place)."""

from allauth.mfa.apps import MFAConfig as _AllauthMFAConfig


class MFAConfig(_AllauthMFAConfig):  # type: ignore[misc]
    """allauth's mfa app, without its refusal to add an e-mail address once 2FA is on.

    With BASTION_REQUIRE_2FA every user has a second factor, so that rule would make e-mail
    changes impossible. bastion guards the change instead: reauthentication first
    (ACCOUNT_REAUTHENTICATION_REQUIRED), the new address verified by link before it becomes
    primary, and a notice to the old address; signing in still needs the second factor.
    """

    def ready(self) -> None:
        super().ready()
        from allauth.account import signals as account_signals
        from allauth.mfa import signals

        account_signals._add_email.disconnect(signals.on_add_email)
