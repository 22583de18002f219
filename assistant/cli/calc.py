"""``radassist calc NAME --param value ... [--json]``: run one guideline calculator from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from assistant.guidelines import CalculatorInputError, calculate
from assistant.guidelines.forms import CALCULATOR_FORMS, calculator_params
from assistant.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``calc`` with one sub-command per calculator."""
    calc = sub.add_parser("calc", help="run a guideline calculator (Fleischner, Lung-RADS, TI-RADS, ...)")
    names = calc.add_subparsers(dest="calculator", required=True, metavar="NAME")
    for name, (description, params) in CALCULATOR_FORMS.items():
        parser = names.add_parser(name, help=description, description=description)
        for p in params:
            flag = f"--{p.name}"
            help_text = p.help.replace("%", "%%")  # argparse formats help with %-interpolation
            if p.type is bool:
                parser.add_argument(flag, action="store_true", help=help_text)
            elif p.type is list:
                parser.add_argument(flag, nargs="+", choices=p.choices, help=help_text)
            else:
                parser.add_argument(flag, type=p.type, choices=p.choices, required=p.required, help=help_text)
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    calc.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen calculator; print text or JSON. Exit 0, or 2 with a one-line reason on bad input."""
    del settings  # calculators need no configuration
    name = args.calculator
    try:
        result = calculate(name, **calculator_params(name, vars(args)))
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
