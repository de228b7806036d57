"""Between the Workbench and the chat: "Send to chat" opens a cell as a conversation with the
variant's model and parameters; "Copy as code" for a cell and for an answer in the chat."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from PySide6.QtGui import QGuiApplication

from app.core.grid.model import GridConfig, Prompt, TestCase, Variant


def test_send_to_chat_opens_the_cell_with_its_model_and_parameters(bench: Any, window: Any,
                                                                   drive: Callable[..., Any]) -> None:
    config = GridConfig(description="Pets", prompts=(Prompt("About {{pet}}"),),
                        variants=(Variant("mock:fixed?text=purr", label="cat", temperature=0.3, seed=4, system="Be a cat"),),
                        tests=(TestCase({"pet": "cats"}),))  # fmt: skip
    bench.load_config(config, None)
    drive(asyncio.wait_for(bench.run(), 10))
    bench.select_cell(0, 0)
    bench.chat_action.trigger()
    cid = window.session.conversation_id
    assert cid is not None
    messages = window.services.history.messages(cid)
    assert [(m.role, m.content) for m in messages] == [("user", "About cats"), ("assistant", "purr")]
    assert messages[1].model == "mock:fixed?text=purr" and messages[1].params["seed"] == 4
    assert window.backend.current_model() == "mock:fixed?text=purr"
    assert window.editor.system_prompt() == "Be a cat"
    params = window.editor.params()
    assert (params.temperature, params.seed) == (0.3, 4)
    assert [c.body.toPlainText() for c in window.transcript.cards()] == ["About cats", "purr"]

    async def follow_up() -> str:  # the conversation goes on with the variant's model
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        window.session.answer_done.connect(lambda _g, s: done.done() or done.set_result(s))
        window.editor.set_message("and dogs?")
        window.chat.send()
        return await asyncio.wait_for(done, 10)

    assert drive(follow_up()) == "complete"
    assert window.services.history.messages(cid)[-1].content == "purr"


def test_copy_as_code_for_a_cell(bench: Any, openai_server: Any) -> None:
    config = GridConfig(prompts=(Prompt("Hi {{n}}"),),
                        variants=(Variant("openai:gpt-4o-mini", endpoint=openai_server.base_url, seed=2),),
                        tests=(TestCase({"n": "Ann"}),))  # fmt: skip
    bench.load_config(config, None)
    bench.select_cell(0, 0)
    code = bench.copy_selected_code("curl")
    assert code is not None and QGuiApplication.clipboard().text() == code
    assert openai_server.base_url in code and '"content": "Hi Ann"' in code and '"seed": 2' in code
    assert bench.code.text.toPlainText() == code and bench.code.current_language() == "curl"
    python = bench.copy_selected_code("python")
    assert python is not None and "from openai import OpenAI" in python
    bench.load_config(GridConfig(prompts=(Prompt("x"),), variants=(Variant("mock:echo"),)), None)
    bench.select_cell(0, 0)
    assert bench.copy_selected_code() is None and "mock provider runs inside the app" in bench.message.text()


def test_copy_as_code_for_an_answer_in_the_chat(window: Any, openai_server: Any) -> None:
    history = window.services.history
    conv = history.create_conversation("Code", model="openai:gpt-4o-mini", system_prompt="Be brief")
    history.add_message(conv.id, "user", "first question")
    history.add_message(conv.id, "assistant", "first answer", model="openai:gpt-4o-mini")
    history.add_message(conv.id, "user", "second question")
    answer = history.add_message(conv.id, "assistant", "second answer", model="openai:gpt-4o-mini",
                                 endpoint=openai_server.base_url, params={"temperature": 0.1, "seed": 8})  # fmt: skip
    window.open_conversation(conv.id)
    card = window.transcript.cards()[-1]
    assert card.code_menu is not None  # in the answer's "⋯" menu
    labels = [a.text() for a in card.code_menu.actions()]
    assert labels == ["Python (openai SDK)", "curl", "Python (transformers + peft)"]
    card.code_menu.actions()[0].trigger()
    code = QGuiApplication.clipboard().text()
    assert "from openai import OpenAI" in code and openai_server.base_url in code
    assert "'content': 'second question'" in code and "'content': 'first answer'" in code
    assert "'content': 'second answer'" not in code and "'seed': 8" in code and "'content': 'Be brief'" in code
    assert card.message_id == answer.id
    card.code_menu.actions()[2].trigger()  # transformers for a remote model: a message, no code
    assert "served over HTTP" in window.status_label.text()
