"""Which atlas to use: the `atlas:` section of config.yaml as a validated, hashable value."""

import dataclasses
import re
from pathlib import Path

from semantoks.errors import SemantoksError

FAMILIES = ("schaefer", "custom", "brainsemantoks457")
SCHAEFER_PARCELS = tuple(range(100, 1001, 100))
NETWORK_COUNTS = (7, 17)
SUBCORTEX_SCALES = (None, "S1", "S2")
DEFAULT_SPACE = "MNI152NLin2009cAsym"


@dataclasses.dataclass(frozen=True)
class AtlasSpec:
    """A Schaefer-2018 atlas (optionally + Tian subcortex) or a user's own labelled volume."""

    family: str = "schaefer"
    n_parcels: int = 100
    n_networks: int = 7
    space: str = DEFAULT_SPACE
    resolution: int = 2
    subcortex: str | None = None
    dseg: Path | None = None
    labels: Path | None = None
    name: str | None = None
    network_table: Path | None = None

    def __post_init__(self):
        for field in ("dseg", "labels", "network_table"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, field, Path(value))
        self._validate()

    def _validate(self):
        if self.family not in FAMILIES:
            _config_error("family", f"is {self.family!r} but must be one of {', '.join(FAMILIES)}")
        if not _is_int(self.n_networks) or self.n_networks not in NETWORK_COUNTS:
            _config_error("n_networks", f"is {self.n_networks!r} but must be 7 or 17")
        if not re.fullmatch(r"[A-Za-z0-9]+", str(self.space)):
            _config_error("space", f"is {self.space!r} but must be a TemplateFlow template name such as {DEFAULT_SPACE}")
        if not _is_int(self.resolution) or self.resolution < 1:
            _config_error("resolution", f"is {self.resolution!r} but must be a positive integer (TemplateFlow res-)")
        if self.subcortex not in SUBCORTEX_SCALES:
            _config_error("subcortex", f"is {self.subcortex!r} but must be empty, S1 or S2")
        if self.family == "schaefer":
            if not _is_int(self.n_parcels) or self.n_parcels not in SCHAEFER_PARCELS:
                _config_error("n_parcels", f"is {self.n_parcels!r} but must be 100, 200, ..., 1000")
        elif self.family == "brainsemantoks457":
            self._validate_paper_space()
        else:
            self._validate_custom()

    def _validate_paper_space(self):
        if self.dseg is None:
            _config_error("custom.dseg", "is not set; brainsemantoks457 needs the 457-ROI volume published with "
                                         "the Brain-Semantoks weights")
        if self.space != "MNI152NLin6Asym":
            _config_error("space", f"is {self.space!r} but the brainsemantoks457 volume is in MNI152NLin6Asym")
        if self.subcortex is not None:
            _config_error("subcortex", "must be empty for brainsemantoks457, which already holds Tian S3")

    def _validate_custom(self):
        if self.dseg is None or self.labels is None or self.name is None:
            _config_error("family", "is custom, which needs atlas.dseg, atlas.labels and atlas.name")
        if not re.fullmatch(r"[A-Za-z0-9]+", self.name):
            _config_error("name", f"is {self.name!r} but an atlas id may contain only letters and digits (BIDS atlas- entity)")
        if self.subcortex is not None:
            _config_error("subcortex", "must be empty for a custom atlas; put subcortical regions into your own dseg")

    @property
    def atlas_id(self):
        """The BIDS `atlas-` value, e.g. Schaefer100x7 or Schaefer100x7TianS1."""
        if self.family == "custom":
            return self.name
        if self.family == "brainsemantoks457":
            return "BrainSemantoks457"
        tian = f"Tian{self.subcortex}" if self.subcortex else ""
        return f"Schaefer{self.n_parcels}x{self.n_networks}{tian}"

    @classmethod
    def from_config(cls, atlas_config):
        """Build from the `atlas:` mapping of config.yaml; keys that steer loading, not identity, are ignored."""
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in atlas_config.items() if key in known and value is not None})


def _is_int(value):
    # YAML gives 100.0 or true for typos; neither may reach a file name
    return isinstance(value, int) and not isinstance(value, bool)


def _config_error(key, problem):
    raise SemantoksError(f"config.yaml: atlas.{key} {problem}; fix it in the atlas section.")
