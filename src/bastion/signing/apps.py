from django.apps import AppConfig


class SigningConfig(AppConfig):
    name = "bastion.signing"
    label = "signing"
