"""The web page in headless Chromium (Playwright): attach an image, see its tile grid, ask, watch the answer
stream in, ask a follow-up. Needs Debian's ``chromium`` (``apt-get install -y chromium``): the test fails,
not skips, without it. ``TESSERA_SCREENSHOT=path.png`` saves a screenshot of the page with its answers."""

from __future__ import annotations

import base64
import os
import shutil

import pytest
from serve_helpers import SlowVLM, running_server, tiny_vlm

from conftest import conformance_path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_TOKENS = 40


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM) and shutil.which("chromium") is None:
        pytest.fail("Chromium is missing: install it with `apt-get install -y chromium` (Debian) to run the "
                    "web page test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                              args=ARGS, headless=True)
        yield b
        b.close()


def test_upload_ask_and_stream(browser):
    image = conformance_path("preprocess", "images", "doc_1000x700.png")
    vlm = tiny_vlm()
    # 20 ms per step so that the answer visibly streams (40 steps: 0.8 s)
    with running_server(SlowVLM(vlm, 0.02)) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 820}, device_scale_factor=1)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "/")
        page.wait_for_selector("#status.ok")
        assert page.inner_text("#model") == "mini-internvl-chat-2b-v1-5-tiny"
        page.click("#settings-toggle")
        page.fill("#max-tokens", str(MAX_TOKENS))

        page.set_input_files("#file", str(image))
        tiles = page.wait_for_selector("#attachments .tiled[data-cols]")
        grid = (int(tiles.get_attribute("data-cols")), int(tiles.get_attribute("data-rows")))
        assert grid == (3, 2)  # 1000x700 with up to 12 tiles, as tessera.preprocess.tile_grid picks
        assert page.locator("#attachments .tiles span").count() == 6
        assert "3×2 tiles + thumbnail" in page.inner_text("#attachments .tile-label")

        question = "What does this document say?"
        page.fill("#question", question)
        page.press("#question", "Enter")
        # while streaming: some text is already there and the cursor class is on
        page.wait_for_function(
            "() => { const b = document.querySelector('.msg.assistant .bubble');"
            " return b && b.dataset.state === 'streaming' && b.querySelector('.text').textContent.length > 0; }",
            timeout=10_000,
        )
        page.wait_for_selector(".msg.assistant .bubble[data-state=done]", timeout=15_000)
        answer = page.inner_text(".msg.assistant .bubble .text")
        assert answer == vlm.chat(question, str(image), max_new_tokens=MAX_TOKENS)
        assert f"{MAX_TOKENS} tokens" in page.inner_text(".msg.assistant .meta")
        assert page.locator(".msg.user .tiled img").count() == 1  # the question keeps its image

        # a follow-up turn: the conversation (with the image) goes back to the server
        page.fill("#question", "And the title?")
        page.click("#send")
        page.wait_for_selector(".msg.assistant >> nth=1 >> .bubble[data-state=done]", timeout=15_000)
        second = page.locator(".msg.assistant .bubble .text").nth(1).inner_text()
        history = [(f"<image>\n{question}", answer)]
        assert second == vlm.chat("And the title?", [str(image)], history=history, max_new_tokens=MAX_TOKENS)
        assert not page.locator(".bubble.error").count()
        if os.environ.get("TESSERA_SCREENSHOT"):  # the docs picture: answers plus a pending attachment
            page.click("#settings-toggle")
            page.set_input_files("#file", str(conformance_path("preprocess", "images", "uhd_3840x2160.png")))
            page.wait_for_selector("#attachments .tiled[data-cols]")
            page.mouse.move(0, 400)
            page.screenshot(path=os.environ["TESSERA_SCREENSHOT"])
        assert errors == []
        page.close()


DROP_AND_PASTE = """async (kind) => {
  const bytes = Uint8Array.from(atob(window.__png), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
  if (kind === "drop") {
    window.dispatchEvent(new DragEvent("dragenter", { dataTransfer: data }));
    window.dispatchEvent(new DragEvent("drop", { dataTransfer: data, cancelable: true }));
  } else {
    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, cancelable: true }));
  }
}"""


def test_drop_and_paste_attach_images(browser):
    png = conformance_path("preprocess", "images", "small_320x240.png").read_bytes()
    with running_server(tiny_vlm()) as server:
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#status.ok")
        page.evaluate("(b64) => { window.__png = b64; }", base64.b64encode(png).decode())
        page.evaluate(DROP_AND_PASTE, "drop")
        page.wait_for_selector("#attachments .attachment >> nth=0")
        assert page.is_hidden("#drop")  # the drop overlay went away again
        page.evaluate(DROP_AND_PASTE, "paste")
        page.wait_for_selector("#attachments .attachment >> nth=1")
        page.wait_for_selector("#attachments .attachment >> nth=1 >> .tiled[data-cols]")
        page.click("#attachments .attachment >> nth=0 >> .remove")
        assert page.locator("#attachments .attachment").count() == 1
        page.close()


def test_error_is_shown_not_swallowed(browser):
    with running_server(tiny_vlm(), max_tiles=2) as server:
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_selector("#status.ok")
        assert page.get_attribute("#max-tiles", "max") == "2"
        page.evaluate("document.getElementById('max-tiles').max = '50'; document.getElementById('max-tiles').value = '50'")
        page.fill("#question", "hi")
        page.press("#question", "Enter")
        error = page.wait_for_selector(".msg.assistant .bubble.error", timeout=10_000)
        assert "max_tiles" in error.inner_text()
        page.close()
