"""The `neurotrans` command: a thin argparse front that delegates to library functions.

Heavy modules (torch, nilearn, matplotlib) are imported inside each command so that
`neurotrans --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from neurotrans import __version__
from neurotrans.errors import InputError, one_line
from neurotrans.io.atomic import write_error


def _simulate(args: argparse.Namespace) -> int:
    from neurotrans.phantom import format_summary, simulate_cohort

    result = simulate_cohort(args.cohort, args.out, n_subjects=args.subjects, voxel_size=args.voxel_size,
                             seed=args.seed, overwrite=args.overwrite, progress=not args.quiet)
    print(format_summary(result))
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from neurotrans.data.check import check_manifest

    report = check_manifest(args.manifest, progress=not args.quiet)
    print(report.format())
    return 0 if report.ok else 1


def _data_manifest(args: argparse.Namespace) -> int:
    from neurotrans.io.builders import build_manifest

    manifest = build_manifest(args.kind, args.root, args.out, pattern=args.pattern, overwrite=args.overwrite)
    print(f"wrote {args.out} ({len(manifest)} rows, images: {', '.join(manifest.image_columns)})")
    return 0


def _train(args: argparse.Namespace) -> int:
    from neurotrans.training.run import train_from_config

    train_from_config(args.config, overrides=args.set, out=args.out, resume=args.resume,
                      max_minutes=args.max_minutes, device=args.device, overwrite=args.overwrite)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from neurotrans.inference.predict import predict_command

    predict_command(checkpoint=args.checkpoint, inputs=args.input, manifest=args.manifest, out=args.out,
                    device=args.device, overwrite=args.overwrite, planes=args.planes, bids=args.bids,
                    direction=args.direction, uncertainty=args.uncertainty, samples=args.samples,
                    temperature=args.temperature, seed=args.seed, age=args.age, age_sweep=args.age_sweep)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from neurotrans.metrics.evaluate import evaluate_command

    evaluate_command(pred_dir=args.pred, manifest=args.manifest, target=args.target, mask=args.mask,
                     out=args.out, train_subjects=args.train_subjects, overwrite=args.overwrite)
    return 0


def _report(args: argparse.Namespace) -> int:
    from neurotrans.report import build_report

    path = build_report(args.run_dir, subjects=args.subjects, overwrite=args.overwrite)
    print(f"report: {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from neurotrans.catalogue import format_catalogue

    print(format_catalogue())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from neurotrans.experiments.demo import run_demo

    run_demo(args.out, minutes=args.minutes, subjects=args.subjects, seed=args.seed, overwrite=args.overwrite)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong and where the help is), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}. Fix: see `{self.prog} --help`\n")


def _explain_cca(args: argparse.Namespace) -> int:
    from neurotrans.explain.cca_run import explain_cca, format_similarity

    result = explain_cca(args.run_dir, n_subjects=args.subjects, max_voxels=args.max_voxels or None, seed=args.seed,
                         component_specs=args.components, overwrite=args.overwrite, device=args.device)
    print(format_similarity(result.summary))
    for run in result.runs:
        print(f"wrote {run / 'explain' / 'cca'}")
    return 0


def _explain_esit(args: argparse.Namespace) -> int:
    from neurotrans.explain.esit_run import explain_esit, format_attention, format_strength

    result = explain_esit(args.run_dir, subjects=args.subjects, z_mm=args.z_mm, overwrite=args.overwrite,
                          device=args.device)
    print(format_strength(result.summary))
    print(format_attention(result.attention_share))
    print(f"wrote {result.run / 'explain' / 'esit'}")
    return 0


def _explain_saliency(args: argparse.Namespace) -> int:
    from neurotrans.explain.p3s import RANKING_FILE, saliency_command

    written = saliency_command(args.run_dir, args.out, checkpoint=args.checkpoint, subjects=args.subjects,
                               device=args.device, overwrite=args.overwrite)
    ranking = next(p for p in written if p.name == RANKING_FILE)
    print(ranking.read_text(), end="")
    print(f"wrote {len(written)} files into {ranking.parent}")
    return 0


def add_explain_parser(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """``neurotrans explain ACTION RUN_DIR``; returns the action group, where each explanation adds its parser."""
    p = sub.add_parser("explain", help="explain what a trained network learned (CCA similarity, ESIT maps, P3S saliency)")
    esub = p.add_subparsers(dest="explain_command", required=True, metavar="ACTION")
    q = esub.add_parser("cca", help="per-layer CCA similarity with T1, PET, tissue maps and AAL2 regions (Fig. 3)")
    q.add_argument("run_dir", type=Path, nargs="+", help="run folder(s); several (e.g. folds) give mean +- SD")
    q.add_argument("--subjects", type=int, default=20, help="training subjects sampled per run (default 20)")
    q.add_argument("--max-voxels", type=int, default=2000, help="voxels per subject (default 2000; 0 = all)")
    q.add_argument("--components", nargs="+", default=None, metavar="LAYER:CONCEPT",
                   help="canonical components drawn, e.g. actv3:GM actv15:putamen (default: the paper's)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--overwrite", action="store_true", help="replace RUN/explain/cca")
    q.set_defaults(func=_explain_cca)
    q = esub.add_parser("esit", help="ESIT attention / embedding maps and hippocampus/amygdala embedding strength")
    q.add_argument("run_dir", type=Path)
    q.add_argument("--subjects", nargs="+", default=None, help="subjects whose maps are written (default: first test)")
    q.add_argument("--z-mm", type=float, default=0.0, help="MNI z of the montage's axial slice (default 0)")
    q.add_argument("--device", default="cpu")
    q.add_argument("--overwrite", action="store_true", help="replace RUN/explain/esit")
    q.set_defaults(func=_explain_esit)
    q = esub.add_parser("saliency", help="P3S maps per input sequence, averaged over the run's test subjects, "
                        "as NIfTI, montages and a ranking of the sequences (papers/003 ch. 2)")
    q.add_argument("run_dir", type=Path, help="a trained run folder")
    q.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/explain/saliency)")
    q.add_argument("--checkpoint", type=Path, default=None, help="default: the run's best, else last checkpoint")
    q.add_argument("--subjects", nargs="+", default=None, help="subject ids (default: the run's test subjects)")
    q.add_argument("--device", default="cpu")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=_explain_saliency)
    return esub


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `neurotrans` and its sub-commands."""
    parser = OneLineParser(prog="neurotrans", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"neurotrans {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="write a simulated cohort (fdg or ms) built on real anatomy")
    p.add_argument("cohort", choices=["fdg", "ms"])
    p.add_argument("--subjects", type=int, default=40, help="number of subjects (default 40)")
    p.add_argument("--voxel-size", type=float, default=1.5, help="1.5 (121x145x121) or 3 mm (61x73x61)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cohort in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("data", help="build and check cohort manifests")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = dsub.add_parser("check", help="check that every file of a manifest loads, grids agree, masks are non-empty")
    q.add_argument("manifest", type=Path)
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_data_check)
    q = dsub.add_parser("manifest", help="build manifest.tsv from a folder, a BIDS dataset or a Clinica CAPS folder")
    q.add_argument("kind", choices=["folder", "bids", "caps"])
    q.add_argument("root", type=Path)
    q.add_argument("--out", type=Path, required=True, help="manifest.tsv to write")
    q.add_argument("--pattern", default=None,
                   help="folder kind: pattern with {subject}, {session}, {modality}, * and **/ (default '**/{subject}/{modality}.nii.gz')")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=_data_manifest)

    p = sub.add_parser("train", help="train a model from a YAML config (on several GPUs or processes: "
                       "torchrun -m neurotrans train ..., docs/distributed.md)")
    p.add_argument("config", type=Path, help="YAML file, or the name of a packaged example config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: the config's)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--max-minutes", type=float, default=None, help="time budget for training")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (under torchrun each process takes "
                   "cuda:LOCAL_RANK, or the CPU with gloo)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser("predict", help="synthesise the target modality with a trained checkpoint")
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                   help="RUN/checkpoints/best.pt; several (e.g. the folds of a config) predict as an ensemble: "
                        "their mean")
    p.add_argument("--input", type=Path, nargs="+", default=None,
                   help="input volume(s), one per input sequence in the checkpoint's order")
    p.add_argument("--manifest", type=Path, default=None)
    p.add_argument("--bids", type=Path, default=None, help="a BIDS dataset to predict (instead of --manifest)")
    p.add_argument("--out", type=Path, required=True,
                   help="output .nii.gz (with --input) or folder (with --manifest or --bids)")
    p.add_argument("--device", default="auto")
    p.add_argument("--planes", default="trained", choices=["trained", "axial", "coronal", "sagittal", "all"],
                   help="slice models: the plane(s) predicted; 'trained' (default) predicts a three-plane model "
                        "on axial slices as the pix2pix paper does, 'all' averages the three planes")
    p.add_argument("--direction", default=None, metavar="SRC->DST",
                   help="unpaired models (unit, cyclegan): e.g. T2w->T1w runs the model backwards and writes the "
                        "input modality (default: the trained direction)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write the voxel-wise SD map (desc-neurotransSD): across the ensemble's models, or "
                        "across samples of a sampling method (DUAL-GLOW)")
    p.add_argument("--samples", type=int, default=None, help="samples per subject for --uncertainty (default: the "
                                                             "model's config)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature for --uncertainty "
                                                                   "(default: the model's config)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples")
    p.add_argument("--age", type=float, default=None, help="side information: predict as if the subjects had this "
                                                           "age (models trained with age, e.g. dualglow_age_fdg)")
    p.add_argument("--age-sweep", type=float, nargs=3, default=None, metavar=("START", "STOP", "N"),
                   help="also write one prediction per age, N ages from START to STOP (desc-neurotransAge<age>)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_predict)

    p = sub.add_parser("evaluate", help="compare predictions with the real target images")
    p.add_argument("--pred", type=Path, required=True, help="folder of predicted volumes")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--target", required=True, help="modality predicted, e.g. FDG")
    p.add_argument("--mask", default=None, help="mask column to evaluate inside, e.g. brainmask")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: PRED/../evaluation)")
    p.add_argument("--train-subjects", type=Path, default=None,
                   help="text file of training subject ids, for the 'other subjects' reference")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("report", help="write the HTML report of a run folder")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--subjects", nargs="*", default=None, help="subjects shown in the montages")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=_report)

    add_explain_parser(sub)

    p = sub.add_parser("list", help="the methods, networks and packaged configs, with their papers")
    p.set_defaults(func=_list)

    p = sub.add_parser("demo", help="simulate, train pix2pix, predict, evaluate and report, on CPU")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    p.add_argument("--subjects", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `neurotrans` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"neurotrans: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a write the library did not wrap (e.g. a log append on a full disk)
        where = err.filename or "neurotrans"
        print(f"neurotrans: error: {write_error(where, err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurotrans: interrupted; files already written are complete (atomic writes); "
              "`train --resume` continues a training run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
