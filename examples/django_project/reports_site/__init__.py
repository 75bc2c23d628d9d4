"""An example Django site instrumented with uptake (see examples/django_project/README.md)."""
