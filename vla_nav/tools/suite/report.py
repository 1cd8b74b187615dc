"""The suite's report: per-tier rates with 95% intervals, the two controls, the printed and
Markdown tables, per-tier trajectory PNGs and the JSON of per-episode records."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from vla_nav.tools.suite.stats import outcome_rates, rate
from vla_nav.tools.suite.tiers import BLIND_PREFIX

RECORD_KEYS = ('label', 'tier', 'mode', 'episode', 'instruction', 'policy_text', 'kind', 'outcome',
               'reason', 'time', 'time_to_goal', 'path_length', 'path_efficiency', 'start_pose',
               'end_pose', 'collided_with', 'steps', 'steps_done', 'target_index', 'end_object',
               'original_instruction', 'original_target', 'chunks', 'inference_ms_p50',
               'start_target_m', 'start_target_pixels', 'seen_by_turning', 'detour_side',
               'turned_rad')
# success of the in-view tiers (the target named and in the first frame) by the distance from the
# robot to the target's surface at the start (m): at 80 px a far target is a few pixels
DISTANCE_BINS = (('under 2 m', 0.0, 2.0), ('2-3 m', 2.0, 3.0), ('3 m and more', 3.0, math.inf))


def by_label(records: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        grouped[record['label']].append(record)
    return dict(grouped)


def retarget_swap(records: list[dict]) -> dict:
    """Retarget-swap control: over the rooms driven both to the generator's target (the distractor
    tier) and to another object (retarget), the fraction where both succeed AND end at different
    objects."""
    original = {r['episode']: r for r in records if r['label'] == 'distractor'}
    pairs = [(original[r['episode']], r) for r in records
             if r['label'] == 'retarget' and r['outcome'] != 'skipped' and r['episode'] in original]
    both = sum(1 for a, b in pairs if a['outcome'] == 'success' and b['outcome'] == 'success'
               and a.get('end_object') is not None and a.get('end_object') != b.get('end_object'))
    return {'pairs': len(pairs), **rate(both, len(pairs))}


def by_target_distance(records: list[dict]) -> dict:
    """{'under 2 m': rates, '2-3 m': ..., '3 m and more': ...} over the in-view tiers' episodes
    (the simulator's IN_VIEW_TIERS and retarget, driven with the words); empty bins are left out."""
    driven = [r for r in _in_view(records) if r.get('start_target_m') is not None]
    return _grouped_rates(driven, [(name, lambda r, low=low, high=high: low <= r['start_target_m'] < high)
                                   for name, low, high in DISTANCE_BINS])


# in-view scenes by how far the robot turned: a target in the first frame needs under half a turn,
# so more is a robot that lost it (or never read it) and looked round
TURN_GROUPS = ((False, 'turned under half a turn'), (True, 'turned more than half a turn'))


def in_view_by_turn(records: list[dict]) -> dict:
    """{'turned under half a turn': rates, 'turned more than half a turn': rates} over the in-view
    tiers' episodes driven with the words (`turned_rad` in their records, half a turn = pi)."""
    driven = [r for r in _in_view(records) if r.get('turned_rad') is not None]
    return _grouped_rates(driven, [(name, lambda r, past=past: (abs(r['turned_rad']) > math.pi) is past)
                                   for past, name in TURN_GROUPS])


def _in_view(records: list[dict]) -> list[dict]:
    """The episodes of the in-view tiers (the simulator's IN_VIEW_TIERS and retarget) driven with
    the words."""
    from vla_nav.sim.navsim import IN_VIEW_TIERS

    labels = (*IN_VIEW_TIERS, 'retarget')
    return [r for r in records if r['label'] in labels and r['outcome'] != 'skipped']


def _grouped_rates(records: list[dict], groups) -> dict:
    """{name: outcome rates} of the records each (name, predicate) of `groups` holds; empty
    groups are left out."""
    out = {}
    for name, holds in groups:
        items = [r for r in records if holds(r)]
        if items:
            out[name] = outcome_rates(items)
    return out


# search scenes by where the target is at the start: a turn in place finds it, or only driving
# does (the expert then follows the room's plan, which the camera does not show)
SEARCH_STARTS = ((True, 'seen by turning in place'), (False, 'found only by driving'))


def search_by_start(records: list[dict]) -> dict:
    """{'seen by turning in place': rates, 'found only by driving': rates} over the search tier's
    episodes driven with the words (`seen_by_turning` in their records); empty groups are left out."""
    driven = [r for r in records if r['label'] == 'search' and r['outcome'] != 'skipped'
              and r.get('seen_by_turning') is not None]
    return _grouped_rates(driven, [(name, lambda r, seen=seen: r['seen_by_turning'] is seen)
                                   for seen, name in SEARCH_STARTS])


# detour scenes by the side the expert's keep-left plan passes the obstacle on: the usual left,
# or the right where the left is shut (PlanningExpert.way_round); the camera has to show which
DETOUR_SIDES = (('left', 'expert passes left'), ('right', 'left shut, expert passes right'))


def detour_by_side(records: list[dict]) -> dict:
    """{'expert passes left': rates, 'left shut, expert passes right': rates} over the detour
    tier's episodes driven with the words (`detour_side` in their records; scenes whose straight
    way is free have None and are left out, as are empty groups)."""
    driven = [r for r in records if r['label'] == 'detour' and r['outcome'] != 'skipped'
              and r.get('detour_side') is not None]
    return _grouped_rates(driven, [(name, lambda r, side=side: r['detour_side'] == side)
                                   for side, name in DETOUR_SIDES])


def summarise_suite(records: list[dict], meta: dict) -> dict:
    """{'meta', 'tiers': {tier: rates}, 'controls': {'language_blind': {tier: {...}},
    'retarget_swap': {...}}, 'records': [...]}; skipped retarget rooms are counted, not rated."""
    grouped = by_label(records)
    tiers, blind = {}, {}
    for label, items in grouped.items():
        driven = [r for r in items if r['outcome'] != 'skipped']
        rates = {**outcome_rates(driven), 'skipped': len(items) - len(driven)}
        if label.startswith(BLIND_PREFIX):
            tier = label.removeprefix(BLIND_PREFIX)
            blind[tier] = {'blind': rates, 'with_words': tiers.get(tier, {}).get('success'),
                           'text': items[0].get('policy_text')}
        else:
            tiers[label] = rates
    for tier, values in blind.items():
        values['with_words'] = tiers.get(tier, {}).get('success')
    controls = {'language_blind': blind}
    if 'retarget' in tiers:
        controls['retarget_swap'] = retarget_swap(records)
    return {'meta': meta, 'tiers': tiers, 'controls': controls,
            'by_target_distance': by_target_distance(records),
            'search_by_start': search_by_start(records),
            'detour_by_side': detour_by_side(records),
            'in_view_by_turn': in_view_by_turn(records),
            'records': [{k: r[k] for k in RECORD_KEYS if k in r} for r in records]}


def _cell(value: dict | None) -> str:
    if not value or value.get('rate') is None:
        return '-'
    return f'{value["rate"]:.2f} [{value["low"]:.2f}, {value["high"]:.2f}]'


def table_rows(summary: dict) -> list[list[str]]:
    rows = [[tier, str(v['episodes']), _cell(v['success']), _cell(v['collision']),
             _cell(v['timeout']), _cell(v['failure'])] for tier, v in summary['tiers'].items()]
    return rows


def format_text(summary: dict) -> str:
    """The printed report: one line per tier, then the controls."""
    meta = summary['meta']
    lines = [f'eval-sim --suite: {meta["model"]} on the {meta["split"]} split, seed {meta["seed"]}, '
             f'{meta["episodes_per_tier"]} episodes per tier (95% Wilson intervals)',
             f'{"tier":<15} {"n":>4}  {"success":<19} {"collision":<19} {"timeout":<19} '
             f'{"failure":<19}']
    for tier, n, *cells in table_rows(summary):
        lines.append(f'{tier:<15} {n:>4}  ' + ' '.join(f'{cell:<19}' for cell in cells))
    for tier, values in summary['controls']['language_blind'].items():
        lines.append(f'language-blind control ({tier}, told "{values["text"]}"): success '
                     f'{_cell(values["blind"]["success"])} vs {_cell(values["with_words"])} with the '
                     'words')
    swap = summary['controls'].get('retarget_swap')
    if swap:
        lines.append(f'retarget-swap control: {swap["count"]} of {swap["pairs"]} rooms reached both '
                     f'named objects and ended at different ones: {_cell(swap)}')
    for key, title in (('by_target_distance', 'in-view tiers by the target\'s distance at the start'),
                       ('search_by_start', 'search by the target at the start'),
                       ('detour_by_side', 'detour by the way round'),
                       ('in_view_by_turn', 'in-view tiers by the turn driven')):
        groups = summary.get(key) or {}
        if groups:
            lines.append(f'{title}: ' + '; '.join(
                f'{name} {_cell(v["success"])} ({v["episodes"]})' for name, v in groups.items()))
    return '\n'.join(lines)


def format_markdown(summary: dict) -> str:
    """The README table (same figures as format_text)."""
    lines = ['| tier | episodes | success | collision | timeout | failure |',
             '| --- | --- | --- | --- | --- | --- |']
    lines += ['| ' + ' | '.join(row) + ' |' for row in table_rows(summary)]
    for tier, values in summary['controls']['language_blind'].items():
        lines.append(f'| language-blind ({tier}, "{values["text"]}") | {values["blind"]["episodes"]} '
                     f'| {_cell(values["blind"]["success"])} | {_cell(values["blind"]["collision"])} '
                     f'| {_cell(values["blind"]["timeout"])} | {_cell(values["blind"]["failure"])} |')
    swap = summary['controls'].get('retarget_swap')
    if swap:
        lines.append(f'| retarget-swap (both reached, different objects) | {swap["pairs"]} '
                     f'| {_cell(swap)} | | | |')
    return '\n'.join(lines)


def write_outputs(summary: dict, records: list[dict], layouts: dict, out: Path,
                  dpi: int = 75) -> dict[str, str]:
    """summary.json (rates + per-episode records), table.md, and <tier>.png per label; returns
    {name: path} of what was written."""
    from vla_nav.tools.eval_sim import plot_trajectories

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    (out / 'table.md').write_text(format_markdown(summary) + '\n')
    written.update(summary=str(out / 'summary.json'), table=str(out / 'table.md'))
    plotted: dict[str, list] = defaultdict(list)
    for index, layout in sorted(layouts.items()):
        plotted[records[index]['label']].append((layout, records[index]))
    for label, items in plotted.items():
        path = out / f'{label.replace(":", "_")}.png'
        plot_trajectories(items, str(path), dpi=dpi, title=label)
        _shrink_png(path)
        written[label] = str(path)
    return written


def _shrink_png(path: Path, colours: int = 96) -> None:
    """A palette PNG (a few tens of kB instead of ~90): plots have few colours."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert('RGB').quantize(colours)
    small.save(path, optimize=True)
