"""The inputs of each guideline calculator, as data: one table serves the CLI flags and the UI's forms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from assistant.guidelines.common import CalculatorInputError


@dataclass(frozen=True)
class CalculatorParam:
    """One input of a calculator form (named like its CLI flag)."""

    name: str
    help: str
    type: Any = float  # float, int, str, bool (a flag) or list (several strings)
    choices: tuple[str, ...] | None = None
    required: bool = False


_COMPOSITION = ("solid", "ground_glass", "part_solid")
CALCULATOR_FORMS: dict[str, tuple[str, list[CalculatorParam]]] = {
    "fleischner": (
        "Fleischner 2017: incidental pulmonary nodule follow-up",
        [
            CalculatorParam("composition", "nodule attenuation", str, _COMPOSITION, True),
            CalculatorParam("count", "single or multiple nodules (default single)", str, ("single", "multiple")),
            CalculatorParam("size-mm", "mean diameter in mm (rounded to the nearest mm by the guideline)"),
            CalculatorParam("long-axis-mm", "long axis in mm (with --short-axis-mm, instead of --size-mm)"),
            CalculatorParam("short-axis-mm", "short axis in mm"),
            CalculatorParam("volume-mm3", "nodule volume in mm^3 (instead of a diameter)"),
            CalculatorParam("risk", "patient risk (needed for solid nodules)", str, ("low", "high")),
            CalculatorParam("solid-component-mm", "solid component of a part-solid nodule, mm"),
            CalculatorParam("age", "age in years (the guideline applies from 35)", int),
            CalculatorParam("known-cancer", "patient has a known primary cancer (out of scope)", bool),
            CalculatorParam("immunosuppressed", "patient is immunosuppressed (out of scope)", bool),
            CalculatorParam("screening", "finding is on a lung cancer screening CT (out of scope)", bool),
        ],
    ),
    "lungrads": (
        "Lung-RADS v2022: lung cancer screening (LDCT) category",
        [
            CalculatorParam("nodule-type", "nodule type (ground_glass = non-solid)", str, _COMPOSITION),
            CalculatorParam("mean-diameter-mm", "mean of long and short axes, mm"),
            CalculatorParam("long-axis-mm", "long axis in mm (with --short-axis-mm)"),
            CalculatorParam("short-axis-mm", "short axis in mm"),
            CalculatorParam("exam", "baseline or follow_up screen (default baseline)", str, ("baseline", "follow_up")),
            CalculatorParam(
                "status",
                "on follow-up: new, growing (> 1.5 mm) or stable (also smaller or up to 1.5 mm larger)",
                str,
                ("new", "growing", "stable"),
            ),
            CalculatorParam("solid-component-mm", "solid component of a part-solid nodule, mm"),
            CalculatorParam("prior-mean-diameter-mm", "mean diameter on the prior screen, mm (derives growth)"),
            CalculatorParam(
                "prior-solid-component-mm", "solid component on the prior screen, mm (0 = none; derives its change)"
            ),
            CalculatorParam(
                "solid-component-change",
                "on follow-up: the part-solid nodule's solid component is new, growing or stable",
                str,
                ("new", "growing", "stable"),
            ),
            CalculatorParam(
                "prior-category",
                "category of this finding at the prior screen (needed when it is stable: stepped management)",
                str,
            ),
            CalculatorParam(
                "proven-benign", "a prior category 4B lesion was proven benign after diagnostic work-up", bool
            ),
            CalculatorParam("slow-growth", "solid/part-solid nodule growing slowly over several screens", bool),
            CalculatorParam(
                "juxtapleural-benign-morphology",
                "juxtapleural or perifissural solid nodule, smooth, oval/lentiform/triangular (baseline or new)",
                bool,
            ),
            CalculatorParam("airway", "airway nodule location", str, ("subsegmental", "segmental_or_proximal")),
            CalculatorParam("airway-persistent-at-3-months", "airway nodule persists at the 3-month LDCT", bool),
            CalculatorParam("cyst", "pulmonary cyst type", str, ("thin_walled", "thick_walled", "multilocular")),
            CalculatorParam(
                "cyst-change",
                "on follow-up: how the cyst changed",
                str,
                (
                    "growing_cystic_component",
                    "growing_wall_or_nodularity",
                    "became_multilocular",
                    "increased_loculation_or_density",
                    "stable",
                ),
            ),
            CalculatorParam("suspicious-features", "additional features suspicious for cancer (4X)", bool),
            CalculatorParam("s-modifier", "significant finding unrelated to lung cancer (S modifier)", bool),
            CalculatorParam("no-nodules", "no nodules", bool),
            CalculatorParam("benign-calcification-or-fat", "nodules with benign calcification or fat only", bool),
            CalculatorParam("incomplete", "prior CT being located or lungs not fully evaluable", bool),
            CalculatorParam("infection-suspected", "findings suggest infection or inflammation", bool),
        ],
    ),
    "tirads": (
        "ACR TI-RADS: thyroid nodule level and FNA / follow-up",
        [
            CalculatorParam("composition", "composition", str, ("cystic", "spongiform", "mixed", "solid"), True),
            CalculatorParam(
                "echogenicity",
                "echogenicity",
                str,
                ("anechoic", "hyperechoic", "isoechoic", "hypoechoic", "very_hypoechoic"),
                True,
            ),
            CalculatorParam("shape", "shape", str, ("wider_than_tall", "taller_than_wide"), True),
            CalculatorParam(
                "margin",
                "margin",
                str,
                ("smooth", "ill_defined", "lobulated", "irregular", "extrathyroidal_extension"),
                True,
            ),
            CalculatorParam(
                "echogenic-foci",
                "echogenic foci, all that apply (default none)",
                list,
                ("none", "comet_tail", "macrocalcifications", "peripheral", "punctate"),
            ),
            CalculatorParam("max-diameter-cm", "maximum diameter in cm"),
            CalculatorParam("max-diameter-mm", "maximum diameter in mm (instead of cm)"),
            CalculatorParam("prior-level", "TR level at the prior scan (1-5)", int),
        ],
    ),
    "bosniak": (
        "Bosniak 2019: cystic renal mass class",
        [
            CalculatorParam("modality", "imaging modality", str, ("ct", "mri"), True),
            CalculatorParam("wall-thickness-mm", "wall thickness, mm (default: thin)"),
            CalculatorParam("septa-count", "number of septa", int),
            CalculatorParam("septa-thickness-mm", "thickest septum, mm"),
            CalculatorParam("protrusion-mm", "convex protrusion (nodule) size, mm"),
            CalculatorParam("protrusion-margin", "margin of the protrusion", str, ("obtuse", "acute")),
            CalculatorParam("attenuation-hu", "attenuation in HU (CT)"),
            CalculatorParam("calcification", "calcification present", bool),
            CalculatorParam("heterogeneous", "mass is heterogeneous", bool),
            CalculatorParam("unenhanced", "only unenhanced imaging (no contrast)", bool),
            CalculatorParam("t2-csf-like", "homogeneous CSF-like T2 signal (MRI)", bool),
            CalculatorParam("t1-markedly-hyperintense", "homogeneous marked T1 hyperintensity (MRI)", bool),
            CalculatorParam("t1-heterogeneous-hyperintense", "heterogeneous T1 hyperintensity, fat-sat (MRI)", bool),
            CalculatorParam("non-enhancing", "walls/septa/nodule do not enhance", bool),
            CalculatorParam("unenhanced-hu", "attenuation of the mass on unenhanced CT, HU (not an enhancement)"),
            CalculatorParam("enhanced-hu", "attenuation of the mass on contrast-enhanced (portal venous) CT, HU"),
            CalculatorParam(
                "too-small-to-characterize", "homogeneous low-attenuation mass too small to characterise", bool
            ),
        ],
    ),
    "birads": (
        "BI-RADS: assessment category meaning, malignancy likelihood and management",
        [
            CalculatorParam("category", "0-6 or 4A/4B/4C", str, None, True),
        ],
    ),
    "lirads": (
        "LI-RADS v2018 CT/MRI: diagnostic category from major features",
        [
            CalculatorParam("size-mm", "observation size: largest dimension, mm", float, None, True),
            CalculatorParam(
                "aphe", "arterial phase hyperenhancement (rim = targetoid: LR-M)", str, ("none", "nonrim", "rim"), True
            ),
            CalculatorParam("washout", "nonperipheral washout", bool),
            CalculatorParam("capsule", "enhancing capsule", bool),
            CalculatorParam("threshold-growth", "threshold growth (>=50% in <=6 months)", bool),
        ],
    ),
    "adrenal": (
        "ACR 2017: incidental adrenal mass",
        [
            CalculatorParam("size-cm", "size in cm", float, None, True),
            CalculatorParam("unenhanced-hu", "attenuation on unenhanced CT, HU"),
            CalculatorParam(
                "benign-feature",
                "diagnostic benign feature",
                str,
                ("macroscopic_fat", "chemical_shift_signal_loss", "cyst", "calcified", "haemorrhage"),
            ),
            CalculatorParam(
                "prior-imaging", "what prior imaging shows", str, ("none", "stable_1y", "new_or_enlarging")
            ),
            CalculatorParam("cancer-history", "patient has a cancer history", bool),
            CalculatorParam("no-cancer-history", "patient has no cancer history", bool),
            CalculatorParam("absolute-washout-pct", "absolute washout, % (thresholds unconfirmed: refused for 1-4 cm)"),
            CalculatorParam("relative-washout-pct", "relative washout, % (thresholds unconfirmed: refused for 1-4 cm)"),
            CalculatorParam("age", "age in years", int),
            CalculatorParam("functioning", "biochemical features of a functioning adenoma or phaeochromocytoma", bool),
            CalculatorParam("symptomatic", "symptoms of adrenal disease (outside the incidental algorithm)", bool),
        ],
    ),
    "renal": (
        "ACR 2018: does a renal mass enhance?",
        [
            CalculatorParam("modality", "imaging modality", str, ("ct", "mri"), True),
            CalculatorParam("hu-increase", "CT attenuation increase after contrast, HU"),
            CalculatorParam("signal-increase-pct", "MRI signal increase after contrast, %"),
            CalculatorParam("subtraction-enhancement", "enhancement visible on MRI subtraction images", bool),
            CalculatorParam("unenhanced-hu", "CT attenuation before contrast, HU (with --enhanced-hu)"),
            CalculatorParam("enhanced-hu", "CT attenuation after contrast, HU (with --unenhanced-hu)"),
        ],
    ),
}


def calculator_params(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``calculate(name, ...)`` from form or flag values keyed by parameter name."""
    params: dict[str, Any] = {}
    for p in CALCULATOR_FORMS[name][1]:
        key = p.name.replace("-", "_")
        value = values.get(key)
        if value is None or value is False:
            continue
        params[key] = value
    # Flags phrased as the exception map onto the calculators' positive keyword arguments.
    renames = {
        "heterogeneous": ("homogeneous", False),
        "unenhanced": ("contrast", False),
        "non_enhancing": ("enhancing", False),
    }
    for flag, (key, value) in renames.items():
        if params.pop(flag, None):
            params[key] = value
    if name == "adrenal" and params.pop("no_cancer_history", None):
        if params.get("cancer_history"):
            raise CalculatorInputError("--cancer-history and --no-cancer-history contradict each other")
        params["cancer_history"] = False
    return params
