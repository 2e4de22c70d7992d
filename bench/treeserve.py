"""What the before/after benchmarks share: a server of a chosen checkout (``--tree``), its
configuration with users and authentication on, and the line of figures appended to a results
file (the before and the after end up side by side)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

from sense_plugin.passwords import hash_password

#: The one camera of the configuration (archive only).
DEVICE = 9890179877273119875


def tree_arguments(description: str | None = None) -> argparse.Namespace:
    """``--tree DIR`` (default: this checkout) and ``--label TEXT`` (default: the tree)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    args.tree = args.tree.resolve()
    args.label = args.label or str(args.tree)
    return args


def write_auth_config(directory: Path, users: Mapping[str, tuple[str, Sequence[str]]],
                      auth_keys: Sequence[str] = ()) -> Path:
    """``directory/sense.toml``: one archive-only camera, authentication on with ``users``
    (name → password, permissions) and the extra ``[auth]`` lines ``auth_keys``."""
    lines = ['[server]', 'serverid = "7015498111931795223"', 'data_dir = "data"',
             "[archive]", "demo = false",
             "[[devices]]", f'deviceid = "{DEVICE}"', 'name = "Entrance"',
             "[auth]", "enabled = true", *auth_keys]
    for name, (password, permissions) in users.items():
        granted = ", ".join(f'"{p}"' for p in permissions)
        lines += ["[[auth.users]]", f'name = "{name}"',
                  f'password_hash = "{hash_password(password)}"', f"permissions = [{granted}]"]
    config = directory / "sense.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def append_result(path: Path, line: str) -> None:
    """Print ``line`` and append it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(line + "\n")
    print(line)
