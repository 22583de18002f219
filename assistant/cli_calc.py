"""``radassist calc NAME --param value ... [--json]``: run one guideline calculator from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from assistant.guidelines import CalculatorInputError, calculate
from assistant.settings import Settings


@dataclass(frozen=True)
class _Param:
    name: str
    help: str
    type: Any = float  # float, int, str, bool (a flag) or list (several strings)
    choices: tuple[str, ...] | None = None
    required: bool = False


_COMPOSITION = ("solid", "ground_glass", "part_solid")
_SPECS: dict[str, tuple[str, list[_Param]]] = {
    "fleischner": (
        "Fleischner 2017: incidental pulmonary nodule follow-up",
        [
            _Param("composition", "nodule attenuation", str, _COMPOSITION, True),
            _Param("count", "single or multiple nodules (default single)", str, ("single", "multiple")),
            _Param("size-mm", "mean diameter in mm (rounded to the nearest mm by the guideline)"),
            _Param("long-axis-mm", "long axis in mm (with --short-axis-mm, instead of --size-mm)"),
            _Param("short-axis-mm", "short axis in mm"),
            _Param("volume-mm3", "nodule volume in mm^3 (instead of a diameter)"),
            _Param("risk", "patient risk (needed for solid nodules)", str, ("low", "high")),
            _Param("solid-component-mm", "solid component of a part-solid nodule, mm"),
            _Param("age", "age in years (the guideline applies from 35)", int),
            _Param("known-cancer", "patient has a known primary cancer (out of scope)", bool),
            _Param("immunosuppressed", "patient is immunosuppressed (out of scope)", bool),
            _Param("screening", "finding is on a lung cancer screening CT (out of scope)", bool),
        ],
    ),
    "lungrads": (
        "Lung-RADS v2022: lung cancer screening (LDCT) category",
        [
            _Param("nodule-type", "nodule type (ground_glass = non-solid)", str, _COMPOSITION),
            _Param("mean-diameter-mm", "mean of long and short axes, mm"),
            _Param("long-axis-mm", "long axis in mm (with --short-axis-mm)"),
            _Param("short-axis-mm", "short axis in mm"),
            _Param("exam", "baseline or follow_up screen (default baseline)", str, ("baseline", "follow_up")),
            _Param("status", "on follow-up: new, growing or stable", str, ("new", "growing", "stable")),
            _Param("solid-component-mm", "solid component of a part-solid nodule, mm"),
            _Param("prior-mean-diameter-mm", "mean diameter on the prior screen, mm (derives growth)"),
            _Param("prior-category", "category of a stable nodule at the prior screen (stepped management)", str),
            _Param(
                "juxtapleural-benign-morphology",
                "juxtapleural solid nodule, smooth, oval/lentiform/triangular",
                bool,
            ),
            _Param("airway", "airway nodule location", str, ("subsegmental", "segmental_or_proximal")),
            _Param("airway-persistent-at-3-months", "airway nodule persists at the 3-month LDCT", bool),
            _Param("cyst", "atypical cyst type", str, ("multilocular", "thick_walled")),
            _Param("suspicious-features", "additional features suspicious for cancer (4X)", bool),
            _Param("no-nodules", "no nodules", bool),
            _Param("benign-calcification-or-fat", "nodules with benign calcification or fat only", bool),
            _Param("incomplete", "prior CT being located or lungs not fully evaluable", bool),
            _Param("infection-suspected", "findings suggest infection or inflammation", bool),
        ],
    ),
    "tirads": (
        "ACR TI-RADS: thyroid nodule level and FNA / follow-up",
        [
            _Param("composition", "composition", str, ("cystic", "spongiform", "mixed", "solid"), True),
            _Param(
                "echogenicity",
                "echogenicity",
                str,
                ("anechoic", "hyperechoic", "isoechoic", "hypoechoic", "very_hypoechoic"),
                True,
            ),
            _Param("shape", "shape", str, ("wider_than_tall", "taller_than_wide"), True),
            _Param(
                "margin",
                "margin",
                str,
                ("smooth", "ill_defined", "lobulated", "irregular", "extrathyroidal_extension"),
                True,
            ),
            _Param(
                "echogenic-foci",
                "echogenic foci, all that apply (default none)",
                list,
                ("none", "comet_tail", "macrocalcifications", "peripheral", "punctate"),
            ),
            _Param("max-diameter-cm", "maximum diameter in cm"),
            _Param("max-diameter-mm", "maximum diameter in mm (instead of cm)"),
            _Param("prior-level", "TR level at the prior scan (1-5)", int),
        ],
    ),
    "bosniak": (
        "Bosniak 2019: cystic renal mass class",
        [
            _Param("modality", "imaging modality", str, ("ct", "mri"), True),
            _Param("wall-thickness-mm", "wall thickness, mm (default: thin)"),
            _Param("septa-count", "number of septa", int),
            _Param("septa-thickness-mm", "thickest septum, mm"),
            _Param("protrusion-mm", "convex protrusion (nodule) size, mm"),
            _Param("protrusion-margin", "margin of the protrusion", str, ("obtuse", "acute")),
            _Param("attenuation-hu", "attenuation in HU (CT)"),
            _Param("calcification", "calcification present", bool),
            _Param("heterogeneous", "mass is heterogeneous", bool),
            _Param("unenhanced", "only unenhanced imaging (no contrast)", bool),
            _Param("t2-csf-like", "homogeneous CSF-like T2 signal (MRI)", bool),
            _Param("t1-markedly-hyperintense", "homogeneous marked T1 hyperintensity (MRI)", bool),
            _Param("t1-heterogeneous-hyperintense", "heterogeneous T1 hyperintensity, fat-sat (MRI)", bool),
            _Param("non-enhancing", "walls/septa/nodule do not enhance", bool),
        ],
    ),
    "birads": (
        "BI-RADS: assessment category meaning, malignancy likelihood and management",
        [
            _Param("category", "0-6 or 4A/4B/4C", str, None, True),
        ],
    ),
    "lirads": (
        "LI-RADS v2018 CT/MRI: diagnostic category from major features",
        [
            _Param("size-mm", "observation size, mm", float, None, True),
            _Param("aphe", "arterial phase hyperenhancement", str, ("none", "nonrim", "rim"), True),
            _Param("washout", "nonperipheral washout", bool),
            _Param("capsule", "enhancing capsule", bool),
            _Param("threshold-growth", "threshold growth (>=50% in <=6 months)", bool),
        ],
    ),
    "adrenal": (
        "ACR 2017: incidental adrenal mass",
        [
            _Param("size-cm", "size in cm", float, None, True),
            _Param("unenhanced-hu", "attenuation on unenhanced CT, HU"),
            _Param(
                "benign-feature",
                "diagnostic benign feature",
                str,
                ("macroscopic_fat", "chemical_shift_signal_loss", "cyst", "calcified", "haemorrhage"),
            ),
            _Param("prior-imaging", "what prior imaging shows", str, ("none", "stable_1y", "new_or_enlarging")),
            _Param("cancer-history", "patient has a cancer history", bool),
            _Param("no-cancer-history", "patient has no cancer history", bool),
            _Param("absolute-washout-pct", "absolute washout, %"),
            _Param("relative-washout-pct", "relative washout, %"),
            _Param("age", "age in years", int),
        ],
    ),
    "renal": (
        "ACR 2018: does a renal mass enhance?",
        [
            _Param("modality", "imaging modality", str, ("ct", "mri"), True),
            _Param("hu-increase", "CT attenuation increase after contrast, HU"),
            _Param("signal-increase-pct", "MRI signal increase after contrast, %"),
            _Param("subtraction-enhancement", "enhancement visible on MRI subtraction images", bool),
        ],
    ),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``calc`` with one sub-command per calculator."""
    calc = sub.add_parser("calc", help="run a guideline calculator (Fleischner, Lung-RADS, TI-RADS, ...)")
    names = calc.add_subparsers(dest="calculator", required=True, metavar="NAME")
    for name, (description, params) in _SPECS.items():
        parser = names.add_parser(name, help=description, description=description)
        for p in params:
            flag = f"--{p.name}"
            if p.type is bool:
                parser.add_argument(flag, action="store_true", help=p.help)
            elif p.type is list:
                parser.add_argument(flag, nargs="+", choices=p.choices, help=p.help)
            else:
                parser.add_argument(flag, type=p.type, choices=p.choices, required=p.required, help=p.help)
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    calc.set_defaults(func=run)


def _params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in _SPECS[name][1]:
        key = p.name.replace("-", "_")
        value = getattr(args, key, None)
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


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen calculator; print text or JSON. Exit 0, or 2 with a one-line reason on bad input."""
    del settings  # calculators need no configuration
    name = args.calculator
    try:
        result = calculate(name, **_params(name, args))
    except CalculatorInputError as exc:
        print(f"radassist calc {name}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print(f"{result.guideline} {result.version}: {result.category}")
        print(result.recommendation)
        if result.malignancy_risk:
            print(f"Malignancy risk: {result.malignancy_risk}")
        for note in result.notes:
            print(f"Note: {note}")
        print(f"Section: {result.section_id}")
    return 0
