"""OpenAI ``messages`` -> the arguments of :meth:`tessera.vlm.VLM.prepare`.

The chat template knows a system message, a history of (question, answer) pairs and the new question.
Mapping rules:

* ``system`` (and ``developer``) messages, wherever they are, are joined with a blank line into the
  system message; without any, the model's default system message is used.
* Consecutive messages of the same role are merged (texts joined by a newline, images kept in order).
  After that the conversation must alternate user / assistant, start and end with a user turn.
* A user turn's text parts are joined by a newline; its images are referenced in order. Each earlier user
  turn becomes a history question with one ``<image>\\n`` per image in front of its text (unless the text
  already holds exactly one ``<image>`` per image, which then marks where they go). The last turn does
  the same when there is history; without history it is passed as is, so ``prepare`` applies the official
  ``chat()`` rule (``<image>\\n`` for one image, ``Image-1: <image>\\n...`` for several), as ``vlm.chat``.
* Images of all turns are kept and passed to ``prepare`` in placeholder order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import APIError
from .schema import ImagePart, Message

IMAGE = "<image>"
RESERVED = ("<IMG_CONTEXT>", "<img>", "</img>")  # image special tokens: only the server may place them


@dataclass
class ImageRef:
    """One image of the conversation: its URL (data:, http(s):, file path) and its place in the request."""

    url: str
    param: str  # e.g. "messages.2.content.1.image_url"


@dataclass
class Conversation:
    """What ``vlm.prepare`` needs, images still unloaded."""

    question: str
    history: list[tuple[str, str]] = field(default_factory=list)
    images: list[ImageRef] = field(default_factory=list)  # all turns, placeholder order
    system_message: str | None = None


@dataclass
class _Turn:
    role: str
    texts: list[str]
    images: list[ImageRef]
    index: int  # first message index (for error params)


def _split_content(msg: Message, i: int) -> tuple[list[str], list[ImageRef]]:
    if msg.content is None:
        raise APIError(400, f"messages.{i}.content is missing; give a string or a list of content parts",
                       param=f"messages.{i}.content", code="invalid_value")
    if isinstance(msg.content, str):
        return [msg.content], []
    texts, refs = [], []
    for j, part in enumerate(msg.content):
        if isinstance(part, ImagePart):
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            refs.append(ImageRef(url, f"messages.{i}.content.{j}.image_url"))
        else:
            texts.append(part.text)
    return texts, refs


def _turn_question(turn: _Turn, prefix_images: bool) -> str:
    text = "\n".join(turn.texts)
    for token in RESERVED:
        if token in text:
            raise APIError(400, f"messages.{turn.index}: the text contains the reserved image token {token!r}; "
                           "send images as image_url content parts", param=f"messages.{turn.index}.content",
                           code="invalid_value")
    n = text.count(IMAGE)
    if n and n != len(turn.images):
        raise APIError(
            400, f"messages.{turn.index}: the text has {n} {IMAGE} placeholder(s) but the message has "
            f"{len(turn.images)} image(s); use one {IMAGE} per image part, or none (images then go first)",
            param=f"messages.{turn.index}.content", code="invalid_value")
    if n == 0 and prefix_images:
        text = f"{IMAGE}\n" * len(turn.images) + text
    return text


def build_conversation(messages: list[Message]) -> Conversation:
    """Map OpenAI messages to system message, history, question and image references (see module doc)."""
    system: list[str] = []
    turns: list[_Turn] = []
    for i, msg in enumerate(messages):
        texts, refs = _split_content(msg, i)
        role = "system" if msg.role == "developer" else msg.role
        if role != "user" and refs:
            raise APIError(400, f"messages.{i}: only user messages may contain images, not {msg.role} messages",
                           param=f"messages.{i}.content", code="invalid_value")
        if role == "system":
            system.append("\n".join(texts))
        elif turns and turns[-1].role == role:
            turns[-1].texts += texts
            turns[-1].images += refs
        else:
            turns.append(_Turn(role, texts, refs, i))
    if not turns or turns[0].role != "user":
        raise APIError(400, "the conversation must start with a user message (after any system messages)",
                       param="messages", code="invalid_value")
    if turns[-1].role != "user":
        raise APIError(400, "the last message must be a user message: the model answers the last question",
                       param="messages", code="invalid_value")
    history = [
        (_turn_question(q, prefix_images=True), "\n".join(a.texts)) for q, a in zip(turns[:-1:2], turns[1::2])
    ]
    question = _turn_question(turns[-1], prefix_images=bool(history))
    images = [ref for t in turns if t.role == "user" for ref in t.images]
    return Conversation(question, history, images, "\n\n".join(system) if system else None)
