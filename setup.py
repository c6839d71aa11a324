"""Packaging that pyproject.toml cannot say: the migrations ride inside the package.

``alembic/`` stays at the top of the repository (``alembic upgrade head`` with
``alembic.ini`` works there); a wheel carries the same directory as ``app/migrations``,
where ``app.db.migrations`` finds it once installed. Everything else is in
pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["app", "app.*"]),
        "app.migrations",
        "app.migrations.versions",
    ],
    package_dir={"app.migrations": "alembic"},
)
