"""``hrnet-zoo``: the weight hub's command line (convert, verify, publish, list).

Each verb is one ``_add_<verb>(subparsers)`` function that registers its parser and handler; to add
a verb, write one more and list it in :data:`VERBS`. Handlers return the exit status.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence


def _convert(args: argparse.Namespace) -> int:
    from .hub import convert
    out = convert(args.checkpoint, args.arch, args.out, tag=args.tag, num_classes=args.num_classes,
                  repo_id=args.repo_id, force=args.force, model_args=dict(args.model_arg))
    print(f'wrote {out}/ ({", ".join(sorted(p.name for p in out.iterdir()))})')
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    from .hub import LAYOUT_NAMES
    p = sub.add_parser('convert', help='a checkpoint of any known layout -> Hub-ready safetensors folder',
                       description='Read a checkpoint with torch.load(weights_only=True) (bare, or under '
                                   '"state_dict"/"model", "module." prefix stripped; the numeric numpy arrays of '
                                   'mmpose 1.x "meta" allowed), detect its key layout '
                                   f'({", ".join(LAYOUT_NAMES)}), load it strictly into our model and write OUT/ '
                                   'with model.safetensors, config.json and README.md (model card). Nothing is '
                                   'written if anything fails. --arch is any name of hrnet_zoo.list_models(): a '
                                   'classifier (config.json in timm\'s format) or a task model (pose, landmarks, '
                                   'segmentation, detection; config.json is hrnet-zoo\'s, from which the model is '
                                   'rebuilt); without --arch, the model of the manifest record whose source '
                                   'checkpoint has this file name. An engine last.pth / best.pth of python -m '
                                   'hrnet_zoo.tasks.<task> train converts too.')
    p.add_argument('checkpoint', type=Path, help='.pth / .pth.tar / .safetensors checkpoint')
    p.add_argument('--arch', default=None, help='model name, e.g. hrnet_w32 or hrnet_w32_pose_coco_256x192 '
                                                '(default: from the manifest record of this file name)')
    p.add_argument('--tag', default=None, help='pretrained tag, e.g. ms_in1k (names the weight arch.tag)')
    p.add_argument('--out', required=True, type=Path, help='output folder (created atomically)')
    p.add_argument('--num-classes', type=int, default=None, help='default: from the checkpoint classifier')
    p.add_argument('--repo-id', default=None, help='Hub repo id used in the model card snippets')
    p.add_argument('--force', action='store_true', help='replace OUT if it exists')
    p.add_argument('--model-arg', action='append', type=_key_value, default=[], metavar='KEY=VALUE',
                   help='task models: a builder argument (repeatable; VALUE is JSON or a string), e.g. '
                        'arch=hrnet_w18_small for hrnet_pose; recorded in config.json')
    p.set_defaults(func=_convert)


def _key_value(text: str):
    key, sep, value = text.partition('=')
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r}')
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _verify(args: argparse.Namespace) -> int:
    from .hub import verify
    report = verify(args.path, arch=args.arch, name=args.name)
    for note in report.notes:
        print(f'note: {note}')
    for problem in report.problems:
        print(f'PROBLEM: {problem}')
    summary = 'OK' if report.ok else f'FAILED ({len(report.problems)} problems)'
    print(f'{summary}: {args.path}')
    return 0 if report.ok else 1


def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('verify', help='check a converted folder or .safetensors file',
                       description='Checks the safetensors header, truncation, dtypes, keys and shapes against '
                                   'the architecture, and the sha256/size against the manifest. One line per '
                                   'problem; exit status 1 if there is any.')
    p.add_argument('path', type=Path, help='converted folder or .safetensors file')
    p.add_argument('--arch', default=None, help='architecture (default: config.json)')
    p.add_argument('--name', default=None, help='manifest name arch.tag (default: from config.json)')
    p.set_defaults(func=_verify)


def _publish(args: argparse.Namespace) -> int:
    from .hub import WeightsError, publish, publish_plan, verify
    report = verify(args.folder)
    if not report.ok:
        raise WeightsError(f'{args.folder} failed verification:\n  ' + '\n  '.join(report.problems))
    target = f'{args.repo_id}@{args.revision or "main"}' + (f' on {args.endpoint}' if args.endpoint else '')
    print(f'{"would upload" if args.dry_run else "uploading"} to {target}{" (private)" if args.private else ""}:')
    for path, size, sha in publish_plan(args.folder):
        print(f'  {path}  {size} bytes  sha256 {sha}')
    if args.dry_run:
        return 0
    from huggingface_hub.errors import HfHubHTTPError
    try:
        info = publish(args.folder, args.repo_id, endpoint=args.endpoint, revision=args.revision,
                       private=args.private)
    except HfHubHTTPError as e:
        raise WeightsError(f'upload to {target} failed: {str(e).splitlines()[0]} (is a write token set? '
                           f'HF_TOKEN or `hf auth login`)') from None
    print(f'committed {info.oid}: {info.commit_url}')
    return 0


def _add_publish(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('publish', help='verify, then upload a converted folder to the Hugging Face Hub',
                       description='Verifies FOLDER, creates the repo if needed and uploads the folder with '
                                   'huggingface_hub. The token comes from HF_TOKEN or `hf auth login`.')
    p.add_argument('folder', type=Path)
    p.add_argument('--repo-id', required=True, help='ORG/NAME')
    p.add_argument('--endpoint', default=None, help='Hub URL (default: HF_ENDPOINT or https://huggingface.co)')
    p.add_argument('--revision', default=None, help='branch to commit to (created if missing)')
    p.add_argument('--private', action='store_true', help='create the repo private')
    p.add_argument('--dry-run', action='store_true', help='print what would be uploaded, upload nothing')
    p.set_defaults(func=_publish)


def weights_table(markdown: bool = False, pretrained: bool = True, task: str = 'classification',
                  layout: Optional[str] = None) -> str:
    """The manifest's records of one task (and source layout) as a table (``markdown=True``: the
    README's "Weights" table for the classifiers, its "Task weights" tables for the others)."""
    from .hub import list_records
    from .configs import HRNET_CONFIGS
    records = list_records(task, layout)
    if task != 'classification':
        return _task_table(records, markdown)
    rows = [(r.name, f'{r.num_params / 1e6:.2f}', f'{r.gmacs:.2f}', _fmt(r.official_gflops), _fmt(r.top1),
             _fmt(r.metrics.get('top5')), _fmt(r.size and f'{r.size / 2**20:.1f} MiB'),
             (r.sha256 or '')[:12] or '-', r.hf_hub_id) for r in records]
    head = ('weight', 'params (M)', 'GMACs', 'official GFLOPs', 'top-1', 'top-5', 'size', 'sha256', 'Hub repo')
    if not pretrained and layout is None:
        named = {r[0].split('.')[0] for r in rows}
        rows += [(a, '', '', '', '', '', '', '', '(no published weights)') for a in HRNET_CONFIGS if a not in named]
    return _render(head, rows, markdown, code_columns=(0, 8))


def _task_table(records, markdown: bool) -> str:
    rows = [(r.name, r.metrics['dataset'], f'{r.input_size[1]}x{r.input_size[2]}', str(r.num_outputs),
             f'{r.num_params / 1e6:.2f}', f'{r.gmacs:.2f}', _fmt(r.official_gflops),
             _metrics_cell(r.metrics), r.source.get('checkpoint', '-'),
             _fmt(r.size and f'{r.size / 2**20:.1f} MiB'), (r.sha256 or '')[:12] or '-', r.hf_hub_id)
            for r in records]
    head = ('weight', 'dataset', 'input', 'outputs', 'params (M)', 'GMACs', 'official GFLOPs', 'official metrics',
            'official file', 'size', 'sha256', 'Hub repo')
    return _render(head, rows, markdown, code_columns=(0, 8, 11))


def _metrics_cell(metrics) -> str:
    """The headline figures (pose: AP and AR of the ten COCO numbers) and how they were evaluated."""
    from .hub.records import metric_values
    values = metric_values(metrics)
    if 'AP' in metrics and 'AR' in metrics:
        values = [(k, v) for k, v in values if k in ('AP', 'AR')]
    return ', '.join(f'{k} {v}' for k, v in values) + (f' ({metrics["eval"]})' if metrics.get('eval') else '')


def _render(head, rows, markdown: bool, code_columns=()) -> str:
    if markdown:
        lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
        quoted = [[f'`{c}`' if i in code_columns and c and c != '-' else c for i, c in enumerate(row)] for row in rows]
        lines += ['| ' + ' | '.join(row) + ' |' for row in quoted]
        return '\n'.join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    return '\n'.join('  '.join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head, *rows])


def _fmt(value) -> str:
    return '-' if value is None or value == '' or value == 0 else str(value)


def _list(args: argparse.Namespace) -> int:
    from .hub import list_records, record_as_json
    if args.json:
        print(json.dumps([record_as_json(r) for r in list_records(args.task, args.source)], indent=2))
        return 0
    shown = {r.task for r in list_records(layout=args.source)} | ({'classification'} if args.source is None else set())
    tasks = [args.task] if args.task else sorted(shown, key=lambda t: (t != 'classification', t))
    if not tasks:
        print(f'no records converted from the {args.source} layout')
        return 0
    tables = [weights_table(markdown=args.markdown, pretrained=args.pretrained, task=t, layout=args.source)
              for t in tasks]
    print('\n\n'.join(tables if len(tables) == 1 else [f'{t}:\n{table}' for t, table in zip(tasks, tables)]))
    return 0


def _add_list(sub: argparse._SubParsersAction) -> None:
    from .hub import LAYOUT_NAMES
    from .tasks.registry import TASKS
    p = sub.add_parser('list', help='variants and published weights (params, GMACs, top-1 / AP / mIoU / NME)',
                       description='Prints the weight manifest, one table per task: params, measured GMACs (at '
                                   'the input size), the official GFLOPs and metrics, file size and sha256 prefix.')
    p.add_argument('--pretrained', action='store_true', help='only variants with published weights')
    p.add_argument('--markdown', action='store_true', help='markdown table (as in the README)')
    p.add_argument('--json', action='store_true', help='every record as JSON (name, task, hf_hub_id, sha256, size, '
                                                        'metrics, ...)')
    p.add_argument('--task', choices=TASKS, default=None, help='only the records of one task')
    p.add_argument('--source', choices=LAYOUT_NAMES, default=None,
                   help="only the records converted from one source layout (the record's source.layout)")
    p.set_defaults(func=_list)


def _recipes(args: argparse.Namespace) -> int:
    from .train.__main__ import recipes_table
    print(recipes_table())
    return 0


def _add_recipes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser('recipes', help='ImageNet training recipes (train with: python -m hrnet_zoo.train --recipe NAME)',
                       description='List the training recipes shipped with hrnet_zoo.train.')
    p.set_defaults(func=_recipes)


VERBS: List[Callable[[argparse._SubParsersAction], None]] = [_add_convert, _add_verify, _add_publish, _add_list,
                                                             _add_recipes]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='hrnet-zoo',
        description='hrnet-zoo tools: the weight hub (convert, verify, publish, list) and more; VERB --help for each.')
    sub = parser.add_subparsers(dest='verb', required=True, metavar='VERB')
    for add in VERBS:
        add(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``hrnet-zoo`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .hub import PretrainedWeightsUnavailable, WeightsError
    try:
        return args.func(args)
    except (WeightsError, PretrainedWeightsUnavailable, FileNotFoundError) as e:
        print(f'hrnet-zoo {args.verb}: error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
