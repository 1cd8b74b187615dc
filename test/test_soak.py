"""`python -m vla_nav soak`: the pass/fail rule, and a short real run of the node suite."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rosutil import REPO_ROOT, TEST_DIR, domain_id_for

from vla_nav.tools.soak import RSS_GROWTH_LIMIT_PCT, rss_growth_pct, verdict

SOAK_TIMEOUT_S = 180


def _report(**changes) -> dict:
    report = {'node_deaths': {}, 'chunks': 100, 'startup_error': None,
              'rss_mb': {'vla_node': {'growth_pct': 1.0}, 'sim_node': {'growth_pct': None}}}
    report.update(changes)
    return report


def test_verdict_passes_a_clean_run_and_names_every_failure():
    assert verdict(_report()) == []
    grown = _report(rss_mb={'vla_node': {'growth_pct': RSS_GROWTH_LIMIT_PCT + 0.5}})
    assert any('vla_node RSS grew' in problem for problem in verdict(grown))
    died = _report(node_deaths={'chunk_executor': -9})
    assert verdict(died) == ['chunk_executor died (exit code -9)']
    assert verdict(_report(chunks=0)) == ['no chunks flowed']
    assert verdict(_report(startup_error='vla_node exited')) == ['vla_node exited']


def test_rss_growth_is_relative_to_the_warm_value():
    assert rss_growth_pct(200.0, 210.0) == pytest.approx(5.0)
    assert rss_growth_pct(None, 210.0) is None


@pytest.mark.ros
@pytest.mark.slow
def test_short_soak_reports_its_figures_as_json(tmp_path):
    command = [sys.executable, '-m', 'vla_nav', 'soak', '--seconds', '18', '--warmup', '6',
               '--instruction-period', '3', '--json', '--backend', 'policies:make_engine',
               '--out', str(tmp_path), '--domain-id', str(domain_id_for(__file__))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TEST_DIR), str(REPO_ROOT)]))
    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=SOAK_TIMEOUT_S)
    report = json.loads(finished.stdout)
    assert finished.returncode == (0 if report['ok'] else 1), finished.stderr
    assert report['problems'] == verdict(report)
    assert report['node_deaths'] == {} and report['startup_error'] is None, finished.stderr
    assert report['instructions_sent'] >= 4
    assert report['chunks'] > 0 and report['chunk_rate_hz'] > 0
    assert report['latency_ms']['p50'] > 0 and report['latency_ms']['p99'] >= report['latency_ms']['p50']
    assert set(report['rss_mb']) == {'sim_node', 'vla_node', 'chunk_executor'}
    for rss in report['rss_mb'].values():
        assert rss['start'] > 0 and rss['end'] > 0 and rss['growth_pct'] is not None
    assert set(report['dropped_frames']) == {'total', 'frames_stale', 'frames_undecodable',
                                             'frames_overwritten'}
    assert report['watchdog_trips'] >= 0
    assert report['exit_codes'] == {'sim_node': 0, 'vla_node': 0, 'chunk_executor': 0}
