"""Configuration loading: cordio (with provenance) against pydantic-settings (without).

20 files of 50 keys each, in TOML, YAML and JSON, plus 20 environment variables and 20
``.env`` variables, loaded into 20 validated sections, by

- cordio: ``load_config`` with file discovery, line numbers and a source for every value;
- pydantic-settings: one ``BaseSettings`` with TOML, YAML, JSON, env and dotenv sources.

Both run in this process, pinned to one core, alternating over ``--rounds`` rounds of
``--loads`` loads each; medians of wall and CPU time per load. Prints
``ratio: cordio/pydantic-settings X``.

Run from the repository root: ``.venv/bin/python bench/config_load.py``.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, create_model
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from cordio import Settings
from cordio.config import DotEnvSource, EnvSource, FileSource, load_config

FILES, KEYS = 20, 50
FORMATS = ("toml", "yaml", "json")


def write_files(root: Path) -> dict[str, list[Path]]:
    by_format: dict[str, list[Path]] = {f: [] for f in FORMATS}
    (root / "conf").mkdir()
    for i in range(FILES):
        fmt = FORMATS[i % len(FORMATS)]
        values = {f"k{j}": (j if j % 2 else f"value-{i}-{j}") for j in range(KEYS)}
        path = root / "conf" / f"part{i:02d}.{fmt}"
        if fmt == "toml":
            body = "\n".join(f"k{j} = {json.dumps(v)}" for j, v in enumerate(values.values()))
            path.write_text(f"[s{i}]\n{body}\n")
        elif fmt == "yaml":
            body = "\n".join(f"  k{j}: {json.dumps(v)}" for j, v in enumerate(values.values()))
            path.write_text(f"s{i}:\n{body}\n")
        else:
            path.write_text(json.dumps({f"s{i}": values}, indent=1))
        by_format[fmt].append(path)
    lines = [f"BENCH__S{i}__K1=7" for i in range(FILES)]
    (root / ".env").write_text("\n".join(lines) + "\n")
    return by_format


def field_types() -> dict[str, Any]:
    return {f"k{j}": (int, 0) if j % 2 else (str, "") for j in range(KEYS)}


def cordio_sections() -> list[type[Settings]]:
    sections = []
    for i in range(FILES):
        cls = type(f"S{i}", (Settings,), {"__annotations__": {}}, section=f"s{i}")
        model = create_model(f"S{i}Model", __base__=cls, **field_types())  # type: ignore[call-overload]
        model.__section__ = f"s{i}"
        sections.append(model)
    return sections


def pydantic_settings_class(by_format: dict[str, list[Path]], env_file: Path) -> type[Any]:
    sections = {
        f"s{i}": (create_model(f"P{i}", __base__=BaseModel, **field_types()), ...)  # type: ignore[call-overload]
        for i in range(FILES)
    }

    class Base(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix="BENCH__",
            env_nested_delimiter="__",
            env_file=env_file,
            toml_file=by_format["toml"],
            yaml_file=by_format["yaml"],
            json_file=by_format["json"],
            extra="ignore",
        )

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                dotenv_settings,
                env_settings,
                TomlConfigSettingsSource(settings_cls),
                YamlConfigSettingsSource(settings_cls),
                JsonConfigSettingsSource(settings_cls),
            )

    return create_model("PSettings", __base__=Base, **sections)  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    root = Path(tempfile.mkdtemp(prefix="cordio-bench-"))
    by_format = write_files(root)
    for i in range(FILES):
        os.environ[f"BENCH__S{i}__K3"] = "9"
    sections = cordio_sections()
    sources = [
        FileSource(patterns=("conf/*.{toml,yaml,json}",), root=root),
        EnvSource("bench"),
        DotEnvSource("bench", root / ".env"),
    ]
    peer = pydantic_settings_class(by_format, root / ".env")

    def run_cordio() -> None:
        config = load_config(sections, sources)
        assert config.sections["s3"].k3 == 9  # type: ignore[attr-defined]
        assert config.explain("s3.k1").startswith(".env:")
        assert config.explain("s3.k2").endswith(":4")

    def run_peer() -> None:
        loaded = peer()
        assert loaded.s3.k3 == 9
        assert loaded.s3.k1 == 7

    contenders = {"cordio": run_cordio, "pydantic-settings": run_peer}
    wall: dict[str, list[float]] = {n: [] for n in contenders}
    cpu: dict[str, list[float]] = {n: [] for n in contenders}
    for fn in contenders.values():
        fn()  # warm up
    for round_no in range(args.rounds):
        order = list(contenders) if round_no % 2 == 0 else list(reversed(contenders))
        for name in order:
            began, began_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.loads):
                contenders[name]()
            wall[name].append((time.perf_counter() - began) / args.loads * 1000)
            cpu[name].append((time.process_time() - began_cpu) / args.loads * 1000)
    print(
        f"{FILES} files x {KEYS} keys (TOML/YAML/JSON) + env + .env; "
        f"{args.rounds} rounds x {args.loads} loads, medians per load"
    )
    for name in contenders:
        print(
            f"{name:<18} {statistics.median(wall[name]):7.2f} ms wall "
            f"{statistics.median(cpu[name]):7.2f} ms CPU"
        )
    ratio = statistics.median(wall["cordio"]) / statistics.median(wall["pydantic-settings"])
    print(f"\nratio: cordio/pydantic-settings {ratio:.2f}")


if __name__ == "__main__":
    main()
