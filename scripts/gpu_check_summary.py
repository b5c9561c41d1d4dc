"""Write OUT_DIR/summary.md from the steps scripts/gpu_check.sh recorded, print it; exit 1 if a step failed.

    python scripts/gpu_check_summary.py OUT_DIR [--dry_run]

OUT_DIR/steps.tsv holds one row per step (name, status, milliseconds, budget in seconds, JSON file or -);
each step's key figure comes from its log (OUT_DIR/<step>.log) or the benchmark's JSON. Standard library only.
"""

import argparse
import json
import os
import re
import sys

# The targets, checked where a figure exists (never on a dry run: its sizes are tiny).
TARGET_PAIRS_RATIO = 1.2
TARGET_BF16_SPEEDUP = 2.5
TARGET_BF16_PEAK_SHARE = 35.0
TARGET_LOCAL_PEAK_GB = 16.0
# The step the bf16 targets are for (the 512p pix2pixHD model); another model's fp32/bf16 row reports its figures only.
TARGETED = {'bench_fp32_bf16'}


def read_log(out_dir: str, name: str) -> str:
    """The step's log, or '' when it has none."""
    path = os.path.join(out_dir, f'{name}.log')
    if not os.path.isfile(path):
        return ''
    with open(path, errors='replace') as handle:
        return handle.read()


def read_rows(path: str) -> dict | None:
    """The benchmark's rows by path name, or None when it wrote no JSON."""
    if path == '-' or not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)['rows']


def last_match(pattern: str, text: str) -> re.Match | None:
    """The last match of `pattern` in `text` (multiline)."""
    matches = list(re.finditer(pattern, text, re.MULTILINE))
    return matches[-1] if matches else None


def training_figure(label: str, row: dict) -> str:
    """'label: ms/iter, img/s, TFLOP/s (share of the dense bf16 peak)'."""
    speed = f"{row['ms/iter']:.1f} ms/iter, {row['img/s']:.2f} img/s"
    return f"{label} {speed}, {row['TFLOP/s']:.2f} TFLOP/s ({row['of bf16 peak']} of bf16 peak)"


def mark(met: bool, silent: bool) -> str:
    """A target's verdict (none on a dry run, nor for a step without a target)."""
    return '' if silent else (' (target met)' if met else ' (target missed)')


def key_figure(name: str, log: str, rows: dict | None, dry_run: bool) -> str:
    """The one figure that matters for the step."""
    if name == 'env':
        devices = re.findall(r'^\d+ (.+ GiB)$', log, re.MULTILINE)
        torch_line = last_match(r'^torch .*$', log)
        return '; '.join(devices) or (torch_line.group(0) if torch_line else '')
    if name == 'vgg_weights':
        return 'random-weights VGG19 (no ImageNet file given)' if 'random-weights' in log else 'ImageNet VGG19 file' if log else ''
    if name == 'tests':
        found = last_match(r'^=*\s*(\d+ (passed|failed|skipped|error).*?)\s*=*$', log)
        return found.group(1) if found else ''
    if name == 'step_pairs':
        found = last_match(r'reference ([\d.]+) ms, project ([\d.]+) ms: ratio ([\d.]+)', log)
        if not found:
            return ''
        ratio = float(found.group(3))
        figure = f'reference {found.group(1)} ms, ours {found.group(2)} ms: ratio {ratio:.2f} (median of pairs)'
        return figure + mark(ratio >= TARGET_PAIRS_RATIO, dry_run)
    if name == 'editor_512p':
        found = last_match(r'^edit -> new image.*: median (\d+) ms, p90 (\d+) ms', log)
        return f'edit -> new image: median {found.group(1)} ms, p90 {found.group(2)} ms' if found else ''
    if rows is None:
        return ''
    if name == 'infer_1024p':
        plain, half = rows['plain fp32'], rows['as flagged']
        return f"fp32 {plain['infer ms/img']:.1f} ms/image, --data_type 16 ({half['precision']}) {half['infer ms/img']:.1f} ms/image"
    flagged = rows['as flagged']
    if name == 'bench_local_2048_bf16':
        peak_gb = flagged['peak MiB'] * 2**20 / 1e9
        return f"{flagged['ms/iter']:.1f} ms/iter, peak {peak_gb:.2f} GB" + mark(peak_gb <= TARGET_LOCAL_PEAK_GB, dry_run)
    figures = []
    if 'plain fp32' in rows:
        figures.append(training_figure('fp32', rows['plain fp32']))
    figure = training_figure(flagged['precision'], flagged)
    if 'plain fp32' in rows:
        speedup = rows['plain fp32']['ms/iter'] / flagged['ms/iter']
        share = float(flagged['of bf16 peak'].rstrip('%')) if flagged['of bf16 peak'] != 'n/a' else 0.0
        met = speedup >= TARGET_BF16_SPEEDUP and share >= TARGET_BF16_PEAK_SHARE
        figure += f', {speedup:.2f}x fp32' + mark(met, dry_run or name not in TARGETED)
    if name == 'bench_vid2vid_fp32_bf16':  # an iteration is a clip: img/s counts its made frames
        figures.insert(0, f"clip of {flagged['img/iter']} made frames, peak {flagged['peak MiB'] * 2**20 / 1e9:.2f} GB")
    return '; '.join([*figures, figure])


def main() -> None:
    """Read the steps, write summary.md, print it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir')
    parser.add_argument('--dry_run', action='store_true')
    args = parser.parse_args()
    with open(os.path.join(args.out_dir, 'steps.tsv')) as handle:
        steps = [line.rstrip('\n').split('\t') for line in handle if line.strip()]
    title = '# GPU check' + (' (dry run: tiny sizes on the CPU; the figures mean nothing)' if args.dry_run else '')
    lines = [title, '', '| step | status | time s (budget) | key figure |', '| --- | --- | ---: | --- |']
    total_ms = total_budget = 0
    for name, status, milliseconds, budget, json_path in steps:
        try:
            figure = key_figure(name, read_log(args.out_dir, name), read_rows(json_path), args.dry_run)
        except (KeyError, ValueError, TypeError) as error:  # a half-written log or JSON: say so, keep the table
            figure = f'(no figure: {type(error).__name__} {error})'
        total_ms += int(milliseconds)
        total_budget += int(budget)
        lines.append(f'| {name} | {status} | {int(milliseconds) / 1000:.1f} ({budget}) | {figure.replace("|", "/")} |')
    failed = sum(1 for step in steps if not (step[1] == 'ok' or step[1].startswith('skipped')))
    lines.append('')
    lines.append(f'{len(steps)} steps, {failed} not ok; {total_ms / 1000:.0f} s of {total_budget} s budgeted; logs: {args.out_dir}/')
    text = '\n'.join(lines) + '\n'
    with open(os.path.join(args.out_dir, 'summary.md'), 'w') as handle:
        handle.write(text)
    print(text, end='')
    sys.exit(1 if failed else 0)  # every step ran; the exit status still says whether all went well


if __name__ == '__main__':
    main()
