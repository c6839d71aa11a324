"""The wheel carries what the service reads at run time: the migrations (alembic/ of
the repository, as app/migrations) and the package data that pages will need. CI's
wheel step (.ci/wheel-smoke) then installs it and serves from it; this guards the
content, fast."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import MIGRATION_HEAD

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
# What the build reads: the package, the migrations, and the packaging files.
BUILD_INPUTS = ["pyproject.toml", "setup.py", "README.md", "app", "alembic"]
# Files that are not Python but ride along (a page's template and assets, a .proto).
DATA_FILES = [
    "app/web/templates/pages/index.html",
    "app/web/static/css/site.css",
    "app/web/static/js/live.js",
    "app/grpc/protos/dlsms.proto",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the checkout plus a few data files."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    for name in DATA_FILES:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(f"data: {name}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), "."],
        cwd=source,
        check=True,
        timeout=300,
    )
    (built,) = (root / "dist").glob("dlsms-*.whl")
    return built


def names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_carries_the_migrations_as_app_migrations(wheel: Path) -> None:
    versions = sorted(p.name for p in (REPO_ROOT / "alembic" / "versions").glob("*.py"))
    inside = names(wheel)

    assert {"app/migrations/env.py", "app/migrations/script.py.mako"} <= inside
    packed_versions = sorted(
        name.removeprefix("app/migrations/versions/")
        for name in inside
        if name.startswith("app/migrations/versions/")
    )
    assert packed_versions == versions
    with zipfile.ZipFile(wheel) as archive:
        for version in versions:
            packed = archive.read(f"app/migrations/versions/{version}")
            assert packed == (REPO_ROOT / "alembic" / "versions" / version).read_bytes()
    # Nothing at the top level named alembic: that is the library's name in site-packages.
    assert not [name for name in inside if name.startswith("alembic/")]


def test_wheel_carries_every_module_and_the_package_data(wheel: Path) -> None:
    modules = {
        path.relative_to(REPO_ROOT).as_posix()
        for path in (REPO_ROOT / "app").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    inside = names(wheel)

    assert modules <= inside
    assert set(DATA_FILES) <= inside
    assert not [name for name in inside if name.endswith(".pyc")]


def test_wheel_requires_the_pinned_docs_assets(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("dlsms-0.1.0.dist-info/METADATA").decode()

    # /docs and /redoc serve Swagger UI and ReDoc from this package (app/apidocs.py).
    assert "Requires-Dist: fastapi-standalone-docs==0.3.0" in metadata.splitlines()


def test_installed_wheel_finds_its_migrations_without_the_source_tree(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run(
        [*pip, "--target", str(target), str(wheel)],
        check=True,
        timeout=120,
    )
    probe = (
        "import app, app.db.migrations as m\n"
        "from alembic.script import ScriptDirectory\n"
        "config = m.alembic_config('postgresql://unused')\n"
        "print(app.__file__)\n"
        "print(m.script_location())\n"
        "print(ScriptDirectory.from_config(config).get_current_head())\n"
    )
    # The installed copy comes first on the path; the dependencies come from this venv.
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    package, location, head = result.stdout.splitlines()
    assert Path(package) == target / "app" / "__init__.py"
    assert Path(location) == target / "app" / "migrations"
    assert head == MIGRATION_HEAD
