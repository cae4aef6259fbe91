"""Management commands: `python manage.py init-db`, `python manage.py create-admin`, `python manage.py db ...`."""

from flask.cli import FlaskGroup

from app import create_app

cli = FlaskGroup(create_app=create_app, help=__doc__)

if __name__ == "__main__":
    cli()
