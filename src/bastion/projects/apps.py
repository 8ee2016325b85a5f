from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "bastion.projects"
    label = "projects"
