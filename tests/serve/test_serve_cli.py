"""``tessera serve`` arguments, and the real CLI process under the load-test script (which starts it)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
from serve_helpers import TINY

from tessera.serve import cli

from conftest import REPO, conformance_path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera")
    cli.register(p.add_subparsers(dest="command"))
    return p


def test_register_parses_every_option():
    args = parser().parse_args([
        "serve", "--model", "some/dir", "--host", "0.0.0.0", "--port", "9001", "--api-key", "k", "--max-batch", "4",
        "--max-tiles", "6", "--allow-local-files", "--allow-private-urls", "--device", "cpu", "--dtype", "float32",
        "--max-queue", "10", "--request-timeout", "2.5",
    ])
    assert args.func is cli.run
    assert (args.model, args.host, args.port, args.api_key) == ("some/dir", "0.0.0.0", 9001, "k")
    assert (args.max_batch, args.max_tiles, args.max_queue, args.request_timeout) == (4, 6, 10, 2.5)
    assert args.allow_local_files and args.allow_private_urls
    defaults = parser().parse_args(["serve"])
    assert defaults.model is None and defaults.host == "127.0.0.1" and defaults.port == 8000
    assert not defaults.allow_local_files and not defaults.allow_private_urls


@pytest.mark.parametrize("bad", [["--max-batch", "0"], ["--max-queue", "x"], ["--request-timeout", "-1"],
                                 ["--max-tiles", "0"]])
def test_bad_arguments_are_refused(bad, capsys):
    with pytest.raises(SystemExit) as e:
        parser().parse_args(["serve", *bad])
    assert e.value.code == 2
    assert "expected a positive" in capsys.readouterr().err


def test_missing_model_is_a_clean_error(tmp_path, capsys):
    args = parser().parse_args(["serve", "--model", str(tmp_path / "no-such-model"), "--device", "cpu"])
    assert cli.run(args) == 1
    assert "cannot load the model" in capsys.readouterr().err


def test_load_test_script_against_the_cli_server():
    """benchmarks/load_test.py starts `python -m tessera.serve` on the tiny model and loads it."""
    model = conformance_path("models", TINY)
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "load_test.py"), "--model", str(model), "--clients", "4",
         "--requests", "12", "--max-tokens", "6", "--stream", "--json", "--quiet", "--max-batch", "4"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["ok"] == 12 and figures["errors"] == 0
    assert figures["completion_tokens"] > 0 and figures["requests_per_s"] > 0
    assert 1 <= figures["largest_batch"] <= 4
