"""The one report printer of `bench` and `bench --backbone kosmos2` (vla_nav.tools.bench.print_report)."""
import json

from vla_nav.tools import bench, bench_kosmos2


def rows(report):
    return [('steps/s', f"{report['steps_per_s']:.0f}"), ('a longer name', 'x')]


def test_table_is_aligned_and_ends_with_the_targets(capsys):
    report = {'steps_per_s': 812.4, 'targets_met': {'steps_per_s>=750': True, 'rss<=400': False}}
    bench.print_report(report, rows, as_json=False)
    assert capsys.readouterr().out.splitlines() == [
        'steps/s        812', 'a longer name  x',
        'target steps_per_s>=750  met', 'target rss<=400  NOT met']


def test_json_prints_the_report_and_never_builds_the_table(capsys):
    def no_table(_report):
        raise AssertionError('the table must not be built for --json')
    bench.print_report({'steps_per_s': 1.5}, no_table, as_json=True)
    assert json.loads(capsys.readouterr().out) == {'steps_per_s': 1.5}


def test_both_benches_share_the_printer():
    assert bench_kosmos2.print_report is bench.print_report
