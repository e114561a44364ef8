"""`semantoks <command>`: the pieces of the workflow a person runs by hand."""

import argparse
import json
import sys

from semantoks import __version__
from semantoks.config import DEMO_CONFIG
from semantoks.errors import SemantoksError, os_error_line


def _check_config(args):
    from semantoks.config import load_config
    from semantoks.workflow_plan import plan_workflow

    config = load_config(*args.config)
    # the Snakefile's own parse-time plan: exclusions, TR fallbacks, ROI parcellations, derivatives indexed
    atlas_id, runs = plan_workflow(config)
    phenotypes = ", ".join(config["probe"]["phenotypes"]) or "none"
    planned = ", ".join(f"{cohort} {len(found)} runs ({sum(bool(r.problem) for r in found)} to skip)"
                        for cohort, found in runs.items() if config["cohorts"][cohort]["source"] != "roi")
    print(f"{', '.join(args.config)}: valid; atlas {atlas_id}, cohorts {', '.join(config['cohorts'])}, "
          f"probed phenotypes {phenotypes}" + (f"; planned: {planned}" if planned else ""))


def _atlas(args):
    from semantoks.atlas import load_atlas, write_atlas
    from semantoks.config import load_config
    from semantoks.workflow_plan import atlas_spec_from_config

    config = load_config(args.config)
    settings = config["atlas"]
    atlas = load_atlas(
        atlas_spec_from_config(config),
        templateflow_home=args.templateflow_home or settings["templateflow_home"],
        allow_download=settings["allow_download"] and not args.offline,
    )
    labels, dseg = write_atlas(atlas, args.out)
    counts = atlas.labels["network"].value_counts().reindex(atlas.networks)
    print(f"{atlas.atlas_id}: {len(atlas.labels)} parcels -> {labels}")
    for network, count in counts.items():
        print(f"  {network:<14} {count}")


def _simulate(args):
    from semantoks.atlas import AtlasSpec, load_atlas
    from semantoks.simulate import simulate_cohort

    atlas = load_atlas(AtlasSpec(n_parcels=100, n_networks=7), templateflow_home=args.templateflow_home)
    plan = simulate_cohort(args.out, atlas.image, atlas.labels, args.n_subjects, args.seed, args.resolution_mm)
    print(f"{args.out}: {len(plan.subjects)} simulated subjects, {len(plan.runs)} runs")


def _onboard(args):
    from semantoks.cohorts.onboard import main as onboard_main

    onboard_main(args)


def _pretrain(args):
    import logging

    from semantoks.model.train import pretrain

    # torchrun workers: progress lines to stderr, which the rule appends to its log file
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    with open(args.spec) as handle:
        spec = json.load(handle)
    pretrain(**spec)


def _embed(args):
    from semantoks.api import embed_timeseries_files
    from semantoks.embed import embed_dataset

    if args.dataset:
        from semantoks.model.encode import load_scan_encoder

        atlas_id = args.atlas or load_scan_encoder(args.model).data_identity["atlas_id"]
        frame = embed_dataset(args.model, args.dataset, atlas_id, args.cohorts, args.out, n_crops=args.n_crops)
    else:
        frame = embed_timeseries_files(args.model, args.timeseries, args.out, tr=args.tr, n_crops=args.n_crops)
    print(f"{args.out}: {len(frame)} scans embedded")


def _export(args):
    from semantoks.model.export import export_model

    out = export_model(args.model, args.out, probes_summary=args.probes, training_log=args.log)
    print(f"{out}: model.safetensors, config.json, README.md")


def build_parser():
    parser = argparse.ArgumentParser(prog="semantoks", description=__doc__)
    parser.add_argument("--version", action="version", version=f"semantoks {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser(
        "check-config", help="validate config files exactly as `snakemake --configfile FILE...` will run them")
    check.add_argument("config", nargs="*", default=[str(DEMO_CONFIG)], help=f"config file(s), merged in order (default {DEMO_CONFIG})")
    check.set_defaults(handler=_check_config)

    atlas = commands.add_parser("atlas", help="resolve the configured atlas and write its parcel -> network table")
    atlas.add_argument("--config", default=str(DEMO_CONFIG))
    atlas.add_argument("--out", required=True, help="folder for labels.tsv and dseg.nii.gz")
    atlas.add_argument("--templateflow-home", help="local TemplateFlow-layout folder (overrides the config)")
    atlas.add_argument("--offline", action="store_true", help="never download")
    atlas.set_defaults(handler=_atlas)

    simulate = commands.add_parser("simulate", help="write the simulated demo cohort (BIDS + fMRIPrep-style derivatives)")
    simulate.add_argument("--out", required=True)
    simulate.add_argument("--n-subjects", type=int, default=48)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--resolution-mm", type=float, default=6)
    simulate.add_argument("--templateflow-home", help="local TemplateFlow-layout folder with the Schaefer atlas")
    simulate.set_defaults(handler=_simulate)

    onboard = commands.add_parser("onboard", help="index a new cohort, report problems, write its config entry")
    from semantoks.cohorts.onboard_cli import add_arguments

    add_arguments(onboard)
    onboard.set_defaults(handler=_onboard)

    pretrain = commands.add_parser("pretrain", help="pretrain from a JSON spec (the Snakemake rule and torchrun use this)")
    pretrain.add_argument("--spec", required=True)
    pretrain.set_defaults(handler=_pretrain)
    embed = commands.add_parser("embed", help="embed scans with a trained model (checkpoint.pt or exported folder)")
    embed.add_argument("--model", required=True, help="checkpoint.pt or a folder written by semantoks export")
    source = embed.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="a semantoks dataset folder (results/dataset)")
    source.add_argument("--timeseries", nargs="+", help="per-run .parquet files, or .tsv/.csv named by parcel")
    embed.add_argument("--atlas", help="atlas id in the dataset (default: the model's)")
    embed.add_argument("--cohorts", nargs="+", help="cohorts of the dataset to embed (default: all)")
    embed.add_argument("--tr", type=float, help="repetition time (s) of files that do not record it")
    embed.add_argument("--n-crops", type=int, default=8, help="test-time crops averaged per scan")
    embed.add_argument("--out", required=True, help="features Parquet to write")
    embed.set_defaults(handler=_embed)

    export = commands.add_parser("export", help="export a checkpoint as model.safetensors + config.json + model card")
    export.add_argument("--model", required=True, help="checkpoint.pt")
    export.add_argument("--out", required=True, help="folder to write")
    export.add_argument("--probes", help="probes/summary.tsv to put in the model card")
    export.add_argument("--log", help="the training log.csv to put in the model card")
    export.set_defaults(handler=_export)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except SemantoksError as error:
        print(f"semantoks: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        line = os_error_line(error)
        if line is None:
            raise
        print(f"semantoks: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
