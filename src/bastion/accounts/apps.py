from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "bastion.accounts"
    label = "accounts"

    def ready(self) -> None:
        from bastion.accounts import signals

        signals.connect()
