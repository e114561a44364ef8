import shutil
import subprocess
from pathlib import Path

from semantoks.atomic import write_json
from semantoks.errors import SemantoksError
from semantoks.model.config import execution_settings
from semantoks.model.train import pretrain
from semantoks.rule_runner import rule_script

with rule_script(snakemake) as log:
    spec = {
        # operational settings come from the config itself: changing them must not rerun a finished model
        "cfg": {**dict(snakemake.params.pretrain), **execution_settings(snakemake.config["pretrain"])},
        "dataset_root": snakemake.params.dataset,
        "atlas_id": snakemake.params.atlas_id,
        "cohorts": list(snakemake.params.cohorts),
        "out_dir": snakemake.params.out_dir,
        # a finished run of the same code and data is published again, not retrained (a job that outlived Snakemake)
        "code_version": snakemake.params.code,
    }
    gpus = int(snakemake.resources.gpu)
    if gpus > 1:
        # one process per GPU; DDP reads RANK/WORLD_SIZE from torchrun's environment
        if shutil.which("torchrun") is None:
            raise SemantoksError("torchrun not found on PATH; install torch in the job's environment.")
        spec_path = Path(snakemake.params.out_dir) / "train_spec.json"
        write_json(spec_path, spec)
        command = ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "-m", "semantoks", "pretrain", "--spec", str(spec_path)]
        log.info("launching %s", " ".join(command))
        # the workers' progress lines go to the rule's log file too
        with open(snakemake.log[0], "a") as log_file:
            subprocess.run(command, check=True, stdout=log_file, stderr=subprocess.STDOUT)
    else:
        pretrain(**spec)
