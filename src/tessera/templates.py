"""Conversation templates and prompt building of the official InternVL 1.5 ``chat()`` / ``batch_chat()``.

All three templates use FastChat's MPT separator style::

    system_template.format(system_message=...) + sep
    + for each (role, message): role + message + sep   (or just role when message is empty/None)

with NO newline after ``sep``. Images enter the prompt as ``<image>`` placeholders that are replaced,
in order, by ``<img>`` + ``<IMG_CONTEXT>`` x (num_image_token * tiles) + ``</img>``.

System message (a decision, see docs/sections/tokenizer-templates.md): the templates default to the
training-era English messages that the V1-5 checkpoints were fine-tuned with. Precedence:
explicit ``system_message=`` argument > ``config.json``'s top-level ``system_message`` > template
default. :data:`OFFICIAL_HEAD_SYSTEM_MESSAGE` is the default of today's official code (and of the
conformance fixtures); pass it to reproduce that code exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

IMAGE_PLACEHOLDER = "<image>"
IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"

INTERNLM2_TRAINING_SYSTEM_MESSAGE = "You are an AI assistant whose name is InternLM (书生·浦语)."
PHI3_TRAINING_SYSTEM_MESSAGE = "You are an AI assistant whose name is Phi-3."
# Hermes-2 (InternVL 1.2 / 1.5-Plus) at the 1.5-era code; not in the fact sheet, see the docs section.
HERMES2_TRAINING_SYSTEM_MESSAGE = "Answer the questions."
# Default of all three templates in the official code since 2024-07-19 (commit 0dc48a2).
OFFICIAL_HEAD_SYSTEM_MESSAGE = (
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
)

SYSTEM_MESSAGES: dict[str, dict[str, str]] = {
    "internlm2-chat": {"training": INTERNLM2_TRAINING_SYSTEM_MESSAGE, "head": OFFICIAL_HEAD_SYSTEM_MESSAGE},
    "phi3-chat": {"training": PHI3_TRAINING_SYSTEM_MESSAGE, "head": OFFICIAL_HEAD_SYSTEM_MESSAGE},
    "Hermes-2": {"training": HERMES2_TRAINING_SYSTEM_MESSAGE, "head": OFFICIAL_HEAD_SYSTEM_MESSAGE},
}
"""Per template: ``training`` = the message the checkpoints were trained with (the default here),
``head`` = the default of the official code today."""


@dataclass(frozen=True)
class Template:
    """An MPT-style conversation template.

    ``stop_token_ids`` are the 1.5-era values, valid for the released vocabularies only; the official
    ``chat()`` ignores them and stops on ``convert_tokens_to_ids(stop_token(template))``.
    """

    name: str
    system_template: str
    system_message: str
    roles: tuple[str, str]
    sep: str
    stop_str: str | None = None
    stop_token_ids: tuple[int, ...] = ()


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            name="internlm2-chat",
            system_template="<|im_start|>system\n{system_message}",
            system_message=INTERNLM2_TRAINING_SYSTEM_MESSAGE,
            roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
            sep="<|im_end|>",
            stop_token_ids=(2, 92543, 92542),
        ),
        Template(
            name="phi3-chat",
            system_template="<|system|>\n{system_message}",
            system_message=PHI3_TRAINING_SYSTEM_MESSAGE,
            roles=("<|user|>\n", "<|assistant|>\n"),
            sep="<|end|>",
            stop_token_ids=(2, 32000, 32007),
        ),
        Template(
            name="Hermes-2",
            system_template="<|im_start|>system\n{system_message}",
            system_message=HERMES2_TRAINING_SYSTEM_MESSAGE,
            roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
            sep="<|im_end|>",
            stop_str="<|endoftext|>",
            stop_token_ids=(2, 6, 7, 8),
        ),
    )
}


def get_template(name: str, *, system_message: str | None = None) -> Template:
    """The registered template ``name``; ``system_message`` (e.g. ``config.system_message``) replaces
    its default when not None."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown conversation template {name!r}; known: {sorted(TEMPLATES)}")
    template = TEMPLATES[name]
    if system_message is not None:
        template = dataclasses.replace(template, system_message=system_message)
    return template


def resolve_system_message(
    template: Template, *, config_system_message: str | None = None, system_message: str | None = None
) -> str:
    """Explicit ``system_message`` > ``config.json``'s ``system_message`` > the template default."""
    if system_message is not None:
        return system_message
    if config_system_message is not None:
        return config_system_message
    return template.system_message


def _role(template: Template, role: int | str) -> str:
    if isinstance(role, int) and role in (0, 1):
        return template.roles[role]
    if role in ("user", "assistant"):
        return template.roles[0 if role == "user" else 1]
    if role in template.roles:
        return role
    raise ValueError(f"unknown role {role!r}: use 0/'user', 1/'assistant' or one of {template.roles}")


def render(
    template: Template, messages: Sequence[tuple[int | str, str | None]], *, system_message: str | None = None
) -> str:
    """``Conversation.get_prompt()`` (MPT style). ``messages`` = [(role, text or None), ...] with role
    0/'user' or 1/'assistant'; an empty or None text renders the role alone (the generation prompt).
    ``system_message`` None uses the template's default."""
    sys_msg = template.system_message if system_message is None else system_message
    out = template.system_template.format(system_message=sys_msg) + template.sep
    for role, text in messages:
        prefix = _role(template, role)
        out += prefix + text + template.sep if text else prefix
    return out


def image_tokens(num_tiles: int, num_image_token: int) -> str:
    """The image block that replaces one ``<image>``: tiles include the thumbnail."""
    if num_tiles < 0 or num_image_token <= 0:
        raise ValueError(f"need num_tiles >= 0 and num_image_token > 0, got {num_tiles}, {num_image_token}")
    return IMG_START_TOKEN + IMG_CONTEXT_TOKEN * (num_image_token * num_tiles) + IMG_END_TOKEN


def build_query(
    template: Template,
    question: str,
    *,
    num_patches_list: Sequence[int] = (),
    num_image_token: int,
    history: Sequence[tuple[str, str]] = (),
    system_message: str | None = None,
    image_prefix: str = "chat",
) -> str:
    """The exact query string of the official ``chat()`` (``image_prefix="chat"``) or, per question,
    ``batch_chat()`` (``image_prefix="batch"``).

    ``num_patches_list``: tiles per image, in prompt order (empty = no image). With
    ``image_prefix="chat"``, ``'<image>\\n'`` is prepended when there is no history, images are given
    and the question has no ``<image>``; with ``"batch"`` whenever images are given and the question
    has none. Then the FIRST remaining ``<image>`` of the whole prompt (history questions included)
    is replaced by :func:`image_tokens` for each entry in order. ``history`` holds (question, answer)
    pairs whose questions keep their ``<image>`` placeholders.
    """
    if image_prefix not in ("chat", "batch"):
        raise ValueError(f"image_prefix must be 'chat' or 'batch', got {image_prefix!r}")
    if image_prefix == "batch" and history:
        raise ValueError("batch_chat() has no history support; use image_prefix='chat' for multi-turn")
    num_patches_list = [int(n) for n in num_patches_list]
    has_images = len(num_patches_list) > 0
    if has_images and IMAGE_PLACEHOLDER not in question and (image_prefix == "batch" or not history):
        question = IMAGE_PLACEHOLDER + "\n" + question
    messages: list[tuple[int, str | None]] = []
    for q, a in history:
        messages += [(0, q), (1, a)]
    messages += [(0, question), (1, None)]
    query = render(template, messages, system_message=system_message)
    placeholders = query.count(IMAGE_PLACEHOLDER)
    if len(num_patches_list) > placeholders:
        raise ValueError(
            f"num_patches_list has {len(num_patches_list)} images but the prompt has only {placeholders} "
            f"{IMAGE_PLACEHOLDER} placeholder(s); put one {IMAGE_PLACEHOLDER} per image in the question/history"
        )
    for n in num_patches_list:
        query = query.replace(IMAGE_PLACEHOLDER, image_tokens(n, num_image_token), 1)
    return query


def video_prefix(num_frames: int) -> str:
    """``'Frame1: <image>\\nFrame2: <image>\\n...'`` as in the official video example (one tile per frame)."""
    return "".join(f"Frame{i + 1}: {IMAGE_PLACEHOLDER}\n" for i in range(num_frames))


def stop_token(template: Template) -> str:
    """The token generation stops on: ``sep.strip()`` (``<|im_end|>`` / ``<|end|>``)."""
    return template.sep.strip()


def cut_response(text: str, template: Template) -> str:
    """``chat()``'s post-processing of the decoded output: cut at the first stop token and strip."""
    return text.split(stop_token(template))[0].strip()
