"""Build hook, nothing else (the project is described in pyproject.toml): a wheel ships the model cards
(models/*.toml) and target profiles (targets/*.toml) as package data, edgekit/data/models and edgekit/data/targets,
where edgekit.paths finds them when edgekit is installed. The top-level folders stay the editable copies in a
checkout; an editable install reads them in place."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = {"models": "edgekit/data/models", "targets": "edgekit/data/targets"}


class BuildPyWithData(build_py):
    def _data_copies(self) -> list[tuple[Path, Path]]:
        copies = []
        for src, dest in DATA.items():
            files = sorted(Path(src).glob("*.toml"))
            if not files:  # e.g. an sdist made without MANIFEST.in: refuse to build a wheel with no cards
                raise SystemExit(f"error: no {src}/*.toml to ship — build from a checkout or an sdist that has {src}/")
            copies += [(f, Path(self.build_lib, dest, f.name)) for f in files]
        return copies

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for src, dest in self._data_copies():
            self.mkpath(str(dest.parent))
            self.copy_file(str(src), str(dest))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [str(dest) for _, dest in self._data_copies()]


setup(cmdclass={"build_py": BuildPyWithData})
