from pathlib import Path

from semantoks.atlas import load_atlas, write_atlas
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    settings = snakemake.params.atlas
    atlas = load_atlas(
        snakemake.params.spec,
        templateflow_home=settings["templateflow_home"],
        allow_download=settings["allow_download"],
    )
    write_atlas(atlas, Path(snakemake.output.labels).parent)
    log.info("%s: %d parcels in %d networks", atlas.atlas_id, len(atlas.labels), len(atlas.networks))
