"""Target-state prompts: jinja2 templates from ``prompt_templates/``, rendered in a sandbox, and a prompt lint.

Spreadsheet cells reach a template only as values in its context: they are never parsed as templates, so a
cell holding ``{{ ... }}`` or ``{% include %}`` stays text. The environment is a ``SandboxedEnvironment`` with
``StrictUndefined`` (a missing variable is an error naming the template, the line and the variable), and its
loader only reads the template folders (jinja refuses '..' and absolute template names).
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

from flows.campaign.errors import Problem

REPO_TEMPLATES = Path(__file__).resolve().parents[2] / "prompt_templates"
"""The shared templates; a campaign's own ``prompt_templates/`` folder is searched first."""

_REPAIR = re.compile(
    r"\b(remove[sd]?|removing|fix(e[sd])?|fixing|repair|delete|erase|get rid of|replace[sd]?|"
    r"make (it|this|that|them) (look )?(better|nicer|prettier)|improve|correct(ed)?|"
    r"change (the |a |an )?[\w\s-]{1,30}? (to|into) )",
    re.IGNORECASE)
_REPAIR_WORDS = ("remov", "fix", "repair", "delet", "eras", "get rid", "replac", "make ", "improve", "correct",
                 "change")  # a cheap first look: the regular expression only runs when one of these occurs


def template_dirs(campaign_dir: Path) -> list[Path]:
    """Folders searched for templates, in order: the campaign's own ``prompt_templates/``, then the shared one."""
    return [p for p in (Path(campaign_dir) / "prompt_templates", REPO_TEMPLATES) if p.is_dir()]


def environment(dirs: list[Path]):
    """A sandboxed jinja2 environment over ``dirs``: StrictUndefined, no autoescape, trimmed blocks."""
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(loader=FileSystemLoader([str(d) for d in dirs]), undefined=StrictUndefined,
                                         autoescape=False, trim_blocks=True, lstrip_blocks=True)


def _template_line(ex: BaseException, name: str) -> int | None:
    line = getattr(ex, "lineno", None)
    if line:
        return line
    for frame in reversed(traceback.extract_tb(ex.__traceback__)):
        if frame.filename and (frame.filename.endswith("/" + name) or frame.filename == name):
            return frame.lineno
    return None


def template_problem(ex: BaseException, name: str, file: str) -> Problem:
    """Turn a jinja error into a Problem that names the template, the line and the missing variable."""
    from jinja2 import TemplateNotFound, TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    line = _template_line(ex, name)
    if isinstance(ex, TemplateNotFound):
        return Problem(file=file, message=f"template '{ex.name}' not found in prompt_templates/",
                       fix="use the name of a file in prompt_templates/ (or the campaign's prompt_templates/); "
                           "includes must name templates there too",
                       row=line)
    if isinstance(ex, TemplateSyntaxError):
        return Problem(file=file, message=f"template syntax error: {ex.message}", fix="correct the template",
                       row=line)
    if isinstance(ex, UndefinedError):
        m = re.search(r"'([^']+)' is undefined", str(ex)) or re.search(r"has no attribute '([^']+)'", str(ex))
        var = m.group(1) if m else str(ex)
        return Problem(file=file, message=f"missing variable '{var}' ({ex})",
                       fix="give the variable a value (a sheet column or campaign.yaml key) or remove it from the "
                           "template", row=line)
    if isinstance(ex, SecurityError):
        return Problem(file=file, message=f"the template does something the sandbox forbids ({ex})",
                       fix="templates may only use their variables and jinja's plain filters", row=line)
    return Problem(file=file, message=f"template error: {type(ex).__name__}: {ex}", fix="correct the template",
                   row=line)


def load_template(env, name: str):
    """Load a template by name; raises jinja's errors (turned into Problems by ``template_problem``)."""
    return env.get_template(name)


def template_file(env, name: str) -> str:
    """The template's path as shown in messages (``prompt_templates/target_state.j2``)."""
    try:
        src = env.loader.get_source(env, name)[1]
        p = Path(src)
        return f"{p.parent.name}/{p.name}"
    except Exception:
        return f"prompt_templates/{name}"


def render(template, context: dict) -> str:
    """Render and tidy a prompt: whitespace runs become one space, stray spaces before punctuation go, the
    first letter is a capital.

    Jinja's own ``Template.render`` copies the environment's globals into every context; for thousands of
    variants the context is built here from a copy made once. On any error the template is rendered again the
    ordinary way, so that the exception carries the template's line numbers.
    """
    from jinja2.runtime import new_context

    base = getattr(template, "_ray32_globals", None)
    if base is None:
        base = template._ray32_globals = dict(template.globals)
    try:
        ctx = new_context(template.environment, template.name, template.blocks, {**base, **context}, shared=True)
        text = template.environment.concat(template.root_render_func(ctx))
    except Exception:
        text = template.render(context)  # raises again, with the template's file and line
    text = " ".join(text.split())
    for mark in ",.;:":
        text = text.replace(" " + mark, mark)
    return text[:1].upper() + text[1:]


def lint(prompt: str, must_stay: list[str]) -> list[str]:
    """Warnings for a prompt: repair language, and naming nothing that must stay.

    Args:
        prompt: the rendered prompt.
        must_stay: the campaign's 'what must stay' phrases.

    Returns:
        One sentence per warning (empty when the prompt reads as a target state).
    """
    warnings = []
    low = prompt.lower()
    m = _REPAIR.search(prompt) if any(w in low for w in _REPAIR_WORDS) else None
    if m:
        warnings.append(f"repair language '{m.group(0).strip()}': describe the finished shot as if it exists "
                        "(subject, environment, style, lighting, what stays), not the edits to make")
    if not any(s.lower() in low for s in must_stay):
        warnings.append("the prompt names nothing that must stay: include the campaign's must_stay phrases "
                        "(e.g. {{ must_stay | join(', ') }} in the template)")
    return warnings
