"""cdk-nag's rule catalogue, read from the installed package: each pack's rules, levels, resource types and,
for NIST 800-53 rev 5, the controls each rule documents.

The catalogue comes from the JavaScript that cdk-nag ships inside its Python wheel
(``cdk_nag/_jsii/cdk-nag@<version>.jsii.tgz``): each pack calls ``applyRule({...})`` with the
rule, its level and an ``info`` text, and the NIST packs end that text with
``(Control IDs: AC-3, SC-7, ...)``. Each rule's module tests ``node instanceof Cfn<Type>``
(or compares ``cfnResourceType``), which tells which resource types it inspects.
Nothing is imported through jsii, so reading it costs milliseconds.
"""

from __future__ import annotations

import importlib.util
import re
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACK_FILES = {
    "AwsSolutions": "aws-solutions.js",
    "NIST.800.53.R5": "nist-800-53-r5.js",
    "HIPAA.Security": "hipaa-security.js",
}

_REQUIRE = re.compile(r'const (\w+) = require\("\.\./rules/([\w/-]+)"\);')
_APPLY = re.compile(r"this\.applyRule\(\{(.*?)\n\s*\}\);", re.S)
_SUFFIX = re.compile(r"ruleSuffixOverride: '([^']+)'")
_INFO = re.compile(r"info: (['\"])(.*?)(?<!\\)\1,", re.S)
_LEVEL = re.compile(r"level: nag_rules_1\.NagMessageLevel\.(\w+)")
_RULE = re.compile(r"rule: (\w+)\.(\w+),")
_CONTROLS = re.compile(r"\(Control IDs?: ([^)]*(?:\([^)]*\)[^)]*)*)\)\.?\s*$")
_INSTANCE = re.compile(r"instanceof (aws_\w+)_1\.Cfn(\w+)")
_CFN_TYPE = re.compile(r"cfnResourceType\s*===\s*'(AWS::[\w:]+)'")


@dataclass(frozen=True)
class NagRule:
    """One rule of one pack as cdk-nag applies it."""

    pack: str
    rule_id: str
    level: str
    info: str
    controls: tuple[str, ...]
    resource_types: tuple[str, ...]

    def applies_to(self, cfn_type: str) -> bool:
        """Whether the rule inspects resources of this CloudFormation type."""
        return cfn_type.lower() in self.resource_types


def _tarball() -> Path:
    spec = importlib.util.find_spec("cdk_nag")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("cdk_nag is not installed in this Python: run `make install`")
    jsii = Path(next(iter(spec.submodule_search_locations))) / "_jsii"
    found = sorted(jsii.glob("cdk-nag@*.jsii.tgz"))
    if not found:
        raise FileNotFoundError(f"{jsii}: no cdk-nag jsii tarball")
    return found[-1]


def split_controls(text: str) -> tuple[str, ...]:
    """``AC-3, SC-7(3), AC-2(1)`` -> the control ids, as the pack writes them."""
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _types(module_source: str) -> tuple[str, ...]:
    found = set()
    for module, name in _INSTANCE.findall(module_source):
        service = module.removeprefix("aws_")
        found.add(f"aws::{service}::{name}".lower())
    found.update(t.lower() for t in _CFN_TYPE.findall(module_source))
    return tuple(sorted(found))


@cache
def catalogue() -> tuple[NagRule, ...]:
    """Every rule of the three packs the gate attaches."""
    with tarfile.open(_tarball()) as tar:
        sources = {m.name: m for m in tar.getmembers() if m.name.endswith(".js")}

        def read(name: str) -> str:
            member = sources.get(name)
            if member is None:
                return ""
            extracted = tar.extractfile(member)
            return extracted.read().decode("utf-8") if extracted else ""

        rules = []
        for pack, filename in PACK_FILES.items():
            source = read(f"package/lib/packs/{filename}")
            modules = dict(_REQUIRE.findall(source))
            for block in _APPLY.findall(source):
                rule = _RULE.search(block)
                if rule is None:
                    continue
                module_var, rule_name = rule.groups()
                suffix = _SUFFIX.search(block)
                info_match = _INFO.search(block)
                info = info_match.group(2).replace("\\'", "'") if info_match else ""
                controls = _CONTROLS.search(info)
                level = _LEVEL.search(block)
                module_source = read(f"package/lib/rules/{modules.get(module_var, '')}/{rule_name}.js")
                rules.append(
                    NagRule(
                        pack=pack,
                        rule_id=f"{pack}-{suffix.group(1) if suffix else rule_name}",
                        level=(level.group(1).lower() if level else "error"),
                        info=info,
                        controls=split_controls(controls.group(1)) if controls and pack.startswith("NIST") else (),
                        resource_types=_types(module_source),
                    )
                )
    return tuple(rules)


def version() -> str:
    """The cdk-nag version, from the tarball's name."""
    return _tarball().name.removeprefix("cdk-nag@").removesuffix(".jsii.tgz")
