"""Files that travel with the package: the default model (``models/``) and the systemd units
(``systemd/``). Both folders stay at the top of the repository and are installed as the packages
``ser_stream.models`` and ``ser_stream.units`` (pyproject.toml), so a wheel carries them.
"""

from __future__ import annotations

from pathlib import Path


def packaged_file(package: str, name: str, *, checkout_folder: str) -> Path:
    """``name`` inside the installed ``package`` (found with importlib.resources, any install), else in
    ``checkout_folder`` beside the package (a source checkout run in place)."""
    try:
        from importlib.resources import files

        found = files(package) / name  # (a namespace package: join before str)
        if found.is_file():
            return Path(str(found))
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / checkout_folder / name
