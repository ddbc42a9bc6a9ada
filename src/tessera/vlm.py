"""The user-facing model object: ``tessera.load(...)`` returns a :class:`VLM`.

``VLM`` joins the model, the tokenizer, the chat template and the image processor, and offers the
official ``chat`` / ``batch_chat`` semantics plus streaming. Every entry point (``chat``, ``stream``,
``batch_chat``, the CLI and the HTTP server) goes through :meth:`VLM.prepare` and :meth:`VLM.run`, so the
prompt, the tiles and the decoding are the same everywhere.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import preprocess, templates
from .checkpoint import load_model, save_model
from .generation import Batch, ContinuousBatch, SamplingParams, generate
from .models.internvl import InternVLChatModel
from .tokenizer import IncrementalDecoder, Tokenizer, check_vocab

IMAGE_PLACEHOLDER = "<image>"


@dataclass
class Request:
    """One prepared prompt: text, token ids, tiles and decoding settings."""

    prompt: str
    input_ids: list[int]
    pixel_values: torch.Tensor | None = None  # [tiles, 3, S, S]
    num_patches_list: list[int] = field(default_factory=list)
    params: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()
    question: str = ""  # the question as stored in history (with <image> placeholders)


@dataclass
class StepOutput:
    """What one decode step produced for one request."""

    index: int
    text: str  # newly completed text (whole characters, stop strings held back)
    finished: bool = False
    finish_reason: str | None = None  # "stop" | "length" | "cancelled"
    num_tokens: int = 0  # tokens generated so far


class _TextStream:
    """Incremental text of one row: the official response rule (decode, cut at the separator, strip)
    applied as tokens arrive, with user stop strings cut out and held back until they cannot match."""

    def __init__(self, tokenizer: Tokenizer, sep: str, stop: Sequence[str]):
        self.decoder = IncrementalDecoder(tokenizer, skip_special_tokens=True)
        self.cuts = [s for s in (sep, *stop) if s]
        self.hold = max((len(s) for s in self.cuts), default=1) - 1
        self.raw = ""
        self.emitted = 0
        self.stopped = False

    def push(self, token_id: int) -> str:
        self.raw += self.decoder.push(token_id)
        return self._emit(final=False)

    def finish(self) -> str:
        self.raw += self.decoder.flush()
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        text = self.raw.lstrip()
        cut = min((i for i in (text.find(s) for s in self.cuts) if i >= 0), default=-1)
        if cut >= 0:
            text, final, self.stopped = text[:cut], True, True
        if final:
            ready = text.rstrip()
        else:
            ready = text[: max(0, len(text) - self.hold)]
            ready = ready[: len(ready.rstrip())] if ready.strip() else ""  # trailing space may end the answer
        out = ready[self.emitted:]
        self.emitted = max(self.emitted, len(ready))
        return out


class _Row:
    """The output side of one request in a batch: its text stream, token count and finish rules."""

    def __init__(self, index: int, request: Request, tokenizer: Tokenizer, sep: str):
        self.index, self.request = index, request
        self.stream = _TextStream(tokenizer, sep, request.stop)
        self.count = 0
        self.done = False

    def cancel(self) -> StepOutput:
        self.done = True
        return StepOutput(self.index, "", finished=True, finish_reason="cancelled", num_tokens=self.count)

    def push(self, token: int) -> StepOutput:
        """One generated token -> the request's output for this step."""
        params = self.request.params
        self.count += 1
        out = StepOutput(self.index, "", num_tokens=self.count)
        if token in params.stop_token_ids:
            out.text, out.finished, out.finish_reason = self.stream.finish(), True, "stop"
        else:
            out.text = self.stream.push(token)
            if self.stream.stopped:
                out.finished, out.finish_reason = True, "stop"
            elif self.count >= params.max_new_tokens:
                out.text += self.stream.finish()
                out.finished = True
                out.finish_reason = "stop" if self.stream.stopped else "length"
        self.done = out.finished
        return out


class ContinuousRunner:
    """Continuous batching for a server loop: requests join a running batch between decode steps and leave
    it when they finish (:class:`tessera.generation.ContinuousBatch` underneath). Outputs are indexed by
    row; every call takes the VLM's lock, so ``chat()`` from other threads still works in between.

        runner = vlm.continuous(rows=8, max_len=8192)
        row, first = runner.add(request)       # prefill; ``first`` is the first token's StepOutput
        outputs = runner.step()                # one token for every active row
        runner.cancel(row)                     # free a row early
    """

    def __init__(self, vlm: VLM, rows: int, max_len: int):
        self.vlm = vlm
        with vlm._lock:
            self.batch = ContinuousBatch(vlm.model, rows, max_len, vlm.tokenizer.pad_token_id, compile=vlm.compile)
        self.rows: dict[int, _Row] = {}

    @property
    def free(self) -> int:
        return self.batch.rows - len(self.rows)

    def add(self, request: Request) -> tuple[int, StepOutput]:
        """Prefill ``request`` into a free row; returns the row and the first token's output (the row is
        already freed if that output is final). Raises what the prefill raised."""
        result = self.add_many([request])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def add_many(self, requests: Sequence[Request],
                 max_prefill_tokens: int = 16384) -> list[tuple[int, StepOutput] | Exception]:
        """Prefill several requests into free rows, batched (at most ``max_prefill_tokens`` padded prompt
        tokens per forward); returns ``(row, first output)`` per request, in order, or the exception that
        request's prefill raised (a failed batch is retried one request at a time, so one bad request
        fails alone)."""
        free = self.batch.free_rows
        if len(requests) > len(free):
            raise ValueError(f"{len(requests)} requests for {len(free)} free rows")
        out: list[tuple[int, StepOutput] | Exception] = []
        chunk: list[tuple[int, Request]] = []
        for row, request in zip(free, requests):
            width = max([len(r.input_ids) for _, r in chunk] + [len(request.input_ids)])
            if chunk and width * (len(chunk) + 1) > max_prefill_tokens:
                out += self._prefill(chunk)
                chunk = []
            chunk.append((row, request))
        if chunk:
            out += self._prefill(chunk)
        return out

    def _prefill(self, chunk: list[tuple[int, Request]]) -> list[tuple[int, StepOutput] | Exception]:
        entries = [(row, r.input_ids, r.pixel_values, r.params) for row, r in chunk]
        try:
            with self.vlm._lock:
                tokens = self.batch.add_many(entries)  # changes nothing unless it succeeds
        except Exception as e:
            if len(chunk) == 1:
                return [e]
            return [item for one in chunk for item in self._prefill([one])]
        for row, request in chunk:
            self.rows[row] = _Row(row, request, self.vlm.tokenizer, self.vlm.sep)
        return [(row, self._output(row, token)) for (row, _), token in zip(chunk, tokens)]

    def step(self) -> list[StepOutput]:
        """One decode step for every active row; finished rows are freed."""
        if not self.rows:
            return []
        with self.vlm._lock:
            tokens = self.batch.step()
        return [self._output(row, token) for row, token in tokens.items()]

    def cancel(self, row: int) -> StepOutput:
        out = self.rows.pop(row).cancel()
        self.batch.remove(row)
        return out

    def close(self) -> None:
        with self.vlm._lock:
            self.batch.close()

    def _output(self, row: int, token: int) -> StepOutput:
        out = self.rows[row].push(token)
        if out.finished:
            del self.rows[row]
            self.batch.remove(row)
        return out


class VLM:
    """An InternVL 1.5 chat model ready to answer: model + tokenizer + template + image settings."""

    def __init__(self, model: InternVLChatModel, tokenizer: Tokenizer, path: str | os.PathLike | None = None,
                 *, compile: bool = False, compile_len: int = 8192):
        self.model = model
        self.tokenizer = tokenizer
        self.config = model.config
        self.path = Path(path) if path is not None else None
        self.template = templates.get_template(self.config.template)
        check_vocab(tokenizer, self.config.llm_config.vocab_size)
        model.img_context_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
        self.sep = templates.stop_token(self.template)
        self.stop_token_id = tokenizer.convert_tokens_to_ids(self.sep)
        # the KV caches live in the model: one decode loop at a time, so a VLM can be shared across threads
        self._lock = threading.RLock()
        # compiled decode (torch.compile, CUDA graphs on GPU) over a KV cache of compile_len slots for every
        # call, so each batch size compiles once; calls that do not fit run eagerly. See :func:`load`.
        self.compile, self.compile_len = compile, compile_len

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.model.language_model.head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.language_model.head.weight.dtype

    @property
    def system_message(self) -> str:
        """The default system message: ``config.system_message`` if set, else the template's."""
        return self.config.system_message or self.template.system_message

    @property
    def max_tiles(self) -> int:
        return self.config.max_dynamic_patch if self.config.dynamic_image_size else 1

    # ------------------------------------------------------------------ prompts and inputs
    def build_prompt(
        self,
        question: str,
        *,
        num_patches_list: Sequence[int] = (),
        history: Sequence[tuple[str, str]] = (),
        system_message: str | None = None,
        image_prefix: str = "chat",
    ) -> str:
        """The exact prompt string the official ``chat()`` (or ``batch_chat()``) would tokenize."""
        return templates.build_query(
            self.template,
            question,
            num_patches_list=list(num_patches_list),
            num_image_token=self.config.num_image_token,
            history=list(history),
            system_message=system_message if system_message is not None else self.system_message,
            image_prefix=image_prefix,
        )

    def prepare_images(self, images: Sequence[Any], max_tiles: int | None = None) -> tuple[torch.Tensor, list[int]]:
        """Images (paths, URLs, bytes, PIL, arrays...) -> pixel_values [tiles, 3, S, S] and tiles per image."""
        return preprocess.prepare_images(
            list(images),
            min_tiles=self.config.min_dynamic_patch,
            max_tiles=max_tiles or self.max_tiles,
            image_size=self.config.image_size,
            use_thumbnail=self.config.use_thumbnail,
            dtype=self.dtype,
            device=self.device,
        )

    def prepare(
        self,
        question: str,
        images: Sequence[Any] | Any | None = None,
        *,
        pixel_values: torch.Tensor | None = None,
        num_patches_list: Sequence[int] | None = None,
        video: str | os.PathLike | None = None,
        num_segments: int = 8,
        history: Sequence[tuple[str, str]] | None = None,
        system_message: str | None = None,
        max_tiles: int | None = None,
        image_prefix: str = "chat",
        params: SamplingParams | None = None,
        stop: Sequence[str] | str | None = None,
    ) -> Request:
        """Build one :class:`Request` the way the official ``chat()`` builds its query.

        ``images``: one image or a list (all images of the conversation, history first, in placeholder
        order). Several images without placeholders in the question become ``Image-1: <image>\\n...``.
        ``video``: frames sampled uniformly, one tile each, prefixed ``Frame1: <image>\\n...``.
        ``pixel_values`` + ``num_patches_list``: tiles made elsewhere, as the official ``chat`` takes them.
        """
        if images is not None and not isinstance(images, (list, tuple)):
            images = [images]
        if video is not None:
            from .video import prepare_video, video_prompt_prefix

            pixel_values, num_patches_list = prepare_video(
                video, num_segments=num_segments, image_size=self.config.image_size
            )
            pixel_values = pixel_values.to(self.device, self.dtype)
            if IMAGE_PLACEHOLDER not in question:
                question = video_prompt_prefix(len(num_patches_list)) + question
        elif images:
            pixel_values, num_patches_list = self.prepare_images(images, max_tiles)
            if len(images) > 1 and IMAGE_PLACEHOLDER not in question and not history:
                question = "".join(f"Image-{i + 1}: <image>\n" for i in range(len(images))) + question
        if pixel_values is not None:
            if num_patches_list is None:
                num_patches_list = [pixel_values.shape[0]]
            if sum(num_patches_list) != pixel_values.shape[0]:
                raise ValueError(
                    f"num_patches_list sums to {sum(num_patches_list)} but pixel_values has "
                    f"{pixel_values.shape[0]} tiles"
                )
        else:
            num_patches_list = []
        stored_question = question
        if pixel_values is not None and not history and IMAGE_PLACEHOLDER not in question and image_prefix == "chat":
            stored_question = IMAGE_PLACEHOLDER + "\n" + question
        prompt = self.build_prompt(
            question,
            num_patches_list=num_patches_list,
            history=history or (),
            system_message=system_message,
            image_prefix=image_prefix,
        )
        placeholders_left = prompt.count(IMAGE_PLACEHOLDER)
        if placeholders_left:
            raise ValueError(f"{placeholders_left} <image> placeholder(s) in the conversation have no image")
        params = params or SamplingParams()
        if not params.stop_token_ids:
            params.stop_token_ids = (self.stop_token_id,)
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        ids = self.tokenizer.encode(prompt)
        if pixel_values is not None:
            pixel_values = pixel_values.to(self.device, self.dtype)
        return Request(prompt, ids, pixel_values, list(num_patches_list), params, stops, stored_question)

    # ------------------------------------------------------------------ decoding
    def run(
        self, requests: Sequence[Request], cancelled: Callable[[int], bool] | None = None
    ) -> Iterator[list[StepOutput]]:
        """Decode ``requests`` as one left-padded batch; yields, per step, the outputs that changed.

        ``cancelled(i)`` is polled every step: a cancelled request stops (``finish_reason="cancelled"``).
        The loop ends as soon as every request has finished. Calls from several threads take turns.
        """
        if not requests:
            return
        with self._lock:
            yield from self._run(requests, cancelled)

    def continuous(self, rows: int = 8, max_len: int = 8192) -> ContinuousRunner:
        """A :class:`ContinuousRunner` with ``rows`` slots of ``max_len`` tokens (prompt + answer) each; its
        steps are compiled when the VLM was loaded with ``compile=True``."""
        return ContinuousRunner(self, rows, max_len)

    def _run(self, requests: Sequence[Request], cancelled: Callable[[int], bool] | None) -> Iterator[list[StepOutput]]:
        tiles = [r.pixel_values for r in requests if r.pixel_values is not None]
        pixel_values = torch.cat(tiles) if tiles else None
        batch = Batch.from_ids([r.input_ids for r in requests], self.tokenizer.pad_token_id, pixel_values, self.device)
        rows = [_Row(i, r, self.tokenizer, self.sep) for i, r in enumerate(requests)]
        needed = batch.input_ids.shape[1] + max(r.params.max_new_tokens for r in requests)
        compiled = self.compile and needed <= self.compile_len
        gen = generate(self.model, batch, [r.params for r in requests], self.tokenizer.pad_token_id,
                       compile=compiled, cache_len=self.compile_len if compiled else None)
        try:
            for tokens in gen:
                outputs = []
                for row, token in zip(rows, tokens.tolist()):
                    if row.done:
                        continue
                    if cancelled is not None and cancelled(row.index):
                        outputs.append(row.cancel())
                    else:
                        outputs.append(row.push(token))
                yield outputs
                if all(row.done for row in rows):
                    break
        finally:
            gen.close()

    def _params(self, max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
            repetition_penalty=repetition_penalty, seed=seed, stop_token_ids=(self.stop_token_id,),
        )

    def stream(self, question: str, images: Sequence[Any] | Any | None = None, **kwargs: Any) -> Iterator[str]:
        """Like :meth:`chat`, yielding text pieces (whole characters) as they are decoded."""
        yield from self._stream(self._request(question, images, **kwargs))

    def chat(
        self,
        question: str,
        images: Sequence[Any] | Any | None = None,
        *,
        return_history: bool = False,
        **kwargs: Any,
    ) -> str | tuple[str, list[tuple[str, str]]]:
        """Answer ``question`` about ``images``, as the official ``chat()`` (greedy when temperature is 0).

        Keyword arguments: ``pixel_values``, ``num_patches_list``, ``video``, ``num_segments``, ``history``,
        ``system_message``, ``max_tiles``, ``max_new_tokens`` (1024), ``temperature`` (0.0), ``top_p`` (1.0),
        ``top_k`` (0 = off), ``repetition_penalty`` (1.0), ``seed``, ``stop`` (strings). With
        ``return_history=True`` returns ``(answer, history)``: pass that history, and all the
        conversation's images, to the next turn.
        """
        request = self._request(question, images, **kwargs)
        answer = "".join(self._stream(request))
        if not return_history:
            return answer
        return answer, [*(kwargs.get("history") or []), (request.question, answer)]

    def _request(
        self,
        question: str,
        images: Sequence[Any] | Any | None = None,
        *,
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        repetition_penalty: float = 1.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> Request:
        params = self._params(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
        return self.prepare(question, images, params=params, **kwargs)

    def _stream(self, request: Request) -> Iterator[str]:
        for outputs in self.run([request]):
            for out in outputs:
                if out.text:
                    yield out.text

    def batch_chat(
        self,
        questions: Sequence[str],
        images: Sequence[Any] | None = None,
        *,
        pixel_values: torch.Tensor | None = None,
        num_patches_list: Sequence[int] | None = None,
        system_message: str | None = None,
        max_tiles: int | None = None,
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        repetition_penalty: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | str | None = None,
    ) -> list[str]:
        """Answer several questions in one batch, as the official ``batch_chat()``.

        ``images``: one entry per question (an image, a list of images, or None). ``pixel_values`` +
        ``num_patches_list``: one tile block per question (the official form).
        """
        if images is not None and len(images) != len(questions):
            raise ValueError(f"{len(images)} image entries for {len(questions)} questions")
        if pixel_values is not None:
            if num_patches_list is None or len(num_patches_list) != len(questions):
                raise ValueError("pixel_values needs a num_patches_list with one entry per question")
            blocks = list(torch.split(pixel_values, list(num_patches_list)))
        requests = []
        for i, question in enumerate(questions):
            params = self._params(max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed)
            kwargs: dict[str, Any] = {}
            if pixel_values is not None:
                kwargs = dict(pixel_values=blocks[i], num_patches_list=[int(num_patches_list[i])])
            elif images is not None and images[i] is not None:
                kwargs = dict(images=images[i])
            requests.append(
                self.prepare(question, system_message=system_message, max_tiles=max_tiles, image_prefix="batch",
                             params=params, stop=stop, **kwargs)
            )
        answers = [""] * len(requests)
        for outputs in self.run(requests):
            for out in outputs:
                answers[out.index] += out.text
        return answers

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike, *, dtype: torch.dtype = torch.bfloat16) -> Path:
        """Write an official-layout checkpoint (weights, config, tokenizer and the source's aux files)."""
        out = save_model(self.model, path, source_dir=self.path, dtype=dtype)
        if self.path is None:
            self.tokenizer.save(out)
        return out


def resolve_device(device: str | torch.device | Sequence) -> torch.device | list[torch.device]:
    """"auto" -> cuda if available else cpu; "cuda:0,cuda:1" or a list -> a multi-GPU layer split."""
    from .parallel import parse_devices

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    devices = parse_devices(device)
    return devices if len(devices) > 1 else devices[0]


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}.get(
        dtype, dtype
    )
    if name not in ("bfloat16", "float16", "float32"):
        raise ValueError(f"unknown dtype {dtype!r}; use bfloat16, float16 or float32")
    return getattr(torch, name)


def default_model_path() -> Path:
    """The small model trained by tessera that ships inside the package."""
    return Path(__file__).parent / "assets" / "tessera-tiny"


def load(
    path_or_repo_id: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    compile: bool = False,
    compile_len: int = 8192,
) -> VLM:
    """Load a checkpoint (local directory or Hugging Face repo id) into a ready-to-chat :class:`VLM`.

    ``path_or_repo_id=None`` loads the bundled model. ``device`` may be "auto", or several devices
    ("cuda:0,cuda:1") to split the LLM's layers across GPUs. ``dtype=None`` keeps the checkpoint's own
    dtype, except float16 on CPU, which becomes float32.

    ``compile=True`` runs the decode step through ``torch.compile(mode="reduce-overhead")`` (CUDA graphs on
    a GPU: about 10x the eager decode speed of the 2B on an H200, see the README's GPU tables). The first
    call of each batch size compiles (tens of seconds), so it pays off in long sessions and servers, not
    one-shot commands. Every call uses a KV cache of ``compile_len`` slots (prompt + new tokens), so prompts
    of any length reuse the same graph; a longer call runs eagerly.
    """
    path = path_or_repo_id if path_or_repo_id is not None else default_model_path()
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    model, ckpt = load_model(path, device=dev, dtype=torch_dtype)
    on_cpu = model.language_model.head.weight.device.type == "cpu"
    if torch_dtype is None and on_cpu and model.language_model.head.weight.dtype == torch.float16:
        model = model.float()
    tokenizer = Tokenizer.from_dir(ckpt)
    return VLM(model, tokenizer, ckpt, compile=compile, compile_len=compile_len)
