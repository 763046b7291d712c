"""queuert's tables, created with the state adapter's own migration."""

from django.db import migrations

from queuert_django.schema import ApplySchema


class Migration(migrations.Migration):
    # The adapter migrates on a connection of its own, in its own transaction: Django's
    # connection must hold no transaction (and, on SQLite, no lock) meanwhile.
    atomic = False
    initial = True
    dependencies = []
    operations = [ApplySchema()]
