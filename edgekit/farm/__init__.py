"""Device-farm runs (docs/farm.md).

- `plan`: expand a models x formats x precisions x targets matrix into a CI workflow (GitHub Actions jobs on
  self-hosted runners labelled per device) or a plain JSON matrix for other CI systems.
- `merge`: `edgekit runs import` — runs exported on other machines merged into one store, without duplicates.
- `lab` + `engine`: `edgekit farm run` — a lab of devices (farm.toml) driven through Ray, one job per device at a
  time, resumable. Ray is an optional extra (`pip install 'edgekit[farm]'`), imported only there.
"""
