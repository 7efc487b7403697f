"""The files of jobs/ are what they claim to be: a Ray cluster-launcher config Ray itself
accepts, a KubeRay RayJob, a bash script; every dirsearch command in them parses with the real
command line; every search-space file they name exists and validates."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from dirsearch.cli.main import build_parser
from dirsearch.sweep.spec_reader import load_sweep_spec

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
FILES = ["ray-cluster-aws.yaml", "rayjob.yaml", "slurm.sbatch", "README.md"]
COMMAND = re.compile(r"\bdirsearch (?:run|resume|validate|report|ui|train|data)\b.*")
SHELL_BREAKS = {"&&", "||", ";", "|", ")"}
SPACE_FILE = re.compile(r"search_spaces/[\w.-]+\.yaml")


def text(name: str) -> str:
    """The file with shell line continuations joined (in comments too), and for YAML every
    string value once more (a folded entrypoint is one command over several lines)."""
    raw = (JOBS / name).read_text()
    if name.endswith(".md"):  # the commands are the code: fenced blocks and `spans`
        code = re.findall(r"```\n(.*?)```|`([^`\n]+)`", raw, re.DOTALL)
        raw = "\n".join(block or span for block, span in code)
    values = strings(yaml.safe_load(raw)) if name.endswith(".yaml") else []
    return "\n".join([re.sub(r"\\\n\s*#?\s*", " ", raw), *values])


def strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def commands(source: str) -> list[list[str]]:
    """Each ``dirsearch VERB ...`` of a text as an argument list, up to the end of its shell
    command (``&&``, ``;``, the quote that closes a wrapping string, a comment) or line."""
    found = []
    for line in source.splitlines():
        for match in COMMAND.finditer(line):
            command = match.group(0)
            for quote in "'\"":
                if command.count(quote) % 2:  # the end of a quoted entrypoint
                    command = command[: command.index(quote)]
            lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()")
            lexer.whitespace_split = True
            words = list(lexer)
            arguments = []
            for word in words[1:]:
                if word in SHELL_BREAKS or word.startswith("#"):
                    break
                arguments.append(word)
            found.append(arguments)
    return found


def test_the_cluster_launcher_config_is_one_ray_accepts() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((JOBS / "ray-cluster-aws.yaml").read_text())
    validate_config(prepare_config(config))  # Ray's own schema (what `ray up` checks)
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert "~/.ray/auth_token" in config["file_mounts"]
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)


def test_the_rayjob_is_a_kuberay_rayjob_with_token_auth_and_a_gpu_group() -> None:
    job = yaml.safe_load((JOBS / "rayjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert "dirsearch run" in spec["entrypoint"]
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"]
    (group,) = cluster["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["MLFLOW_TRACKING_URI"].startswith("http")


def test_the_slurm_script_is_bash() -> None:
    script = JOBS / "slurm.sbatch"
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert script.read_text().startswith("#!/bin/bash\n")
    assert "export RAY_AUTH_MODE=token" in script.read_text()


@pytest.mark.parametrize("name", FILES)
def test_every_dirsearch_command_parses_with_the_real_command_line(name: str) -> None:
    found = commands(text(name))
    assert found, f"{name}: no dirsearch command"
    parser = build_parser()
    for arguments in found:
        try:
            parser.parse_args(arguments)
        except SystemExit:
            pytest.fail(f"{name}: dirsearch {' '.join(arguments)}: does not parse")


@pytest.mark.parametrize("name", FILES)
def test_every_space_file_named_exists_and_validates(name: str) -> None:
    spaces = set(SPACE_FILE.findall(text(name)))
    assert spaces, f"{name}: names no search-space file"
    for space in spaces:
        assert (ROOT / space).is_file(), f"{name}: {space} does not exist"
        load_sweep_spec(ROOT / space)  # raises ConfigError with every problem


def test_dashboards_listen_on_loopback_and_are_reached_by_port_forwarding() -> None:
    config = yaml.safe_load((JOBS / "ray-cluster-aws.yaml").read_text())
    (head,) = [c for c in config["head_start_ray_commands"] if "ray start --head" in c]
    assert "--dashboard-host=127.0.0.1" in head
    assert "--port-forward 8265" in (JOBS / "ray-cluster-aws.yaml").read_text()
    for name in FILES:
        assert not re.search(r"dashboard[-_]host[= :\"']*0\.0\.0\.0", text(name)), name
    slurm = (JOBS / "slurm.sbatch").read_text()
    assert "--include-dashboard=false" in slurm


def test_the_mlflow_server_advice_has_authentication_and_named_hosts() -> None:
    servers = [line for line in text("README.md").splitlines() if "mlflow server" in line]
    assert servers, "jobs/README.md: no mlflow server command"
    for command in servers:
        words = shlex.split(command[command.index("mlflow server") :])
        assert words[words.index("--app-name") + 1] == "basic-auth", command
        hosts = words[words.index("--allowed-hosts") + 1]
        assert hosts and "*" not in hosts, command
        assert words[words.index("--host") + 1] != "0.0.0.0", command
