// Web chat of 小助手: talks to POST /api/chat, and polls GET /api/chat/updates for replies from
// staff while a person has the conversation. Plain JS, no dependencies (offline machines).
(() => {
  "use strict";

  // Same limit as ApiSettings.max_message_chars; the server counts code points, so do we.
  const MAX_CHARS = 2000;
  const STORAGE_KEY = "xiaozhushou.sender";
  const SENDER_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
  const NETWORK_ERROR = "网络连接异常，请检查网络后再试。";
  const GENERIC_ERROR = "抱歉，小助手暂时无法回复，请稍后再试。";
  // Staff replies are fetched every POLL_MS while the page is visible; after a failure the wait
  // doubles, up to MAX_POLL_MS, and is back to POLL_MS after the next success.
  const POLL_MS = 3000;
  const MAX_POLL_MS = 60000;

  const messages = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("input");
  const sendButton = document.getElementById("send");
  const counter = document.getElementById("counter");

  let busy = false;

  // crypto.randomUUID exists only on https or localhost; getRandomValues works on plain http too.
  function randomSender() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function loadSender() {
    try {
      let id = localStorage.getItem(STORAGE_KEY);
      if (!id || !SENDER_PATTERN.test(id)) {
        id = randomSender();
        localStorage.setItem(STORAGE_KEY, id);
      }
      return id;
    } catch (_) {
      // Private mode or disabled storage: the conversation lasts as long as the page.
      return randomSender();
    }
  }

  const sender = loadSender();

  function charCount(text) {
    return Array.from(text).length;
  }

  function scrollToEnd() {
    messages.scrollTop = messages.scrollHeight;
  }

  function addRow(who) {
    const row = document.createElement("div");
    row.className = "row " + who;
    messages.appendChild(row);
    return row;
  }

  // textContent only: bot and user text is never parsed as HTML.
  function addBubble(who, text, isError) {
    const row = addRow(who);
    const bubble = document.createElement("div");
    bubble.className = isError ? "bubble error" : "bubble";
    bubble.textContent = text;
    row.appendChild(bubble);
    scrollToEnd();
    return row;
  }

  function addImage(src) {
    if (typeof src !== "string" || !/^(https?:\/\/|\/|data:image\/)/i.test(src)) return;
    const row = addRow("bot");
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    const img = document.createElement("img");
    img.src = src;
    img.alt = "图片";
    img.loading = "lazy";
    img.addEventListener("load", scrollToEnd);
    bubble.appendChild(img);
    row.appendChild(bubble);
    scrollToEnd();
  }

  function addButtons(buttons) {
    const valid = buttons.filter((b) => b && typeof b.title === "string" && typeof b.payload === "string");
    if (valid.length === 0) return;
    const row = addRow("bot");
    const chips = document.createElement("div");
    chips.className = "chips";
    for (const button of valid) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.textContent = button.title;
      chip.addEventListener("click", () => {
        if (busy) return;
        // A quick reply answers one question: keep the choice visible, stop double sends.
        for (const other of chips.children) other.disabled = true;
        chip.classList.add("chosen");
        send(button.payload, button.title);
      });
      chips.appendChild(chip);
    }
    row.appendChild(chips);
    scrollToEnd();
  }

  function render(botMessages, isError) {
    for (const message of botMessages) {
      if (!message || typeof message !== "object") continue;
      if (typeof message.text === "string" && message.text !== "") addBubble("bot", message.text, isError);
      if (message.image) addImage(message.image);
      if (Array.isArray(message.buttons)) addButtons(message.buttons);
      // `custom` payloads are meant for richer clients (dashboards); this page ignores them.
    }
  }

  function showTyping() {
    const row = addRow("bot");
    const bubble = document.createElement("div");
    bubble.className = "bubble typing";
    bubble.setAttribute("aria-label", "小助手正在输入");
    for (let i = 0; i < 3; i += 1) bubble.appendChild(document.createElement("span"));
    row.appendChild(bubble);
    scrollToEnd();
    return row;
  }

  function updateComposer() {
    const count = charCount(input.value);
    const over = count > MAX_CHARS;
    counter.textContent = count + " / " + MAX_CHARS;
    counter.classList.toggle("over", over);
    input.classList.toggle("over", over);
    counter.title = over ? "超过 " + MAX_CHARS + " 字，请精简后再发送" : "";
    sendButton.disabled = busy || over || input.value.trim() === "";
  }

  function autoGrow() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 160) + "px";
  }

  async function send(message, shownText) {
    if (busy) return;
    busy = true;
    addBubble("user", shownText === undefined ? message : shownText, false);
    updateComposer();
    const typing = showTyping();
    try {
      const response = await fetch("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sender, message, metadata: { channel: "web" } }),
      });
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      typing.remove();
      if (Array.isArray(body)) {
        // A 503 still carries a list with the apology to show.
        render(body, !response.ok);
      } else {
        addBubble("bot", GENERIC_ERROR, true);
      }
    } catch (_) {
      typing.remove();
      addBubble("bot", NETWORK_ERROR, true);
    } finally {
      busy = false;
      updateComposer();
      input.focus();
    }
  }

  function submitInput() {
    const text = input.value;
    if (busy || text.trim() === "" || charCount(text) > MAX_CHARS) return;
    input.value = "";
    autoGrow();
    send(text);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitInput();
  });

  input.addEventListener("keydown", (event) => {
    // While a Chinese IME is composing, Enter confirms the candidate and must not send.
    if (event.isComposing || event.keyCode === 229) return;
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      submitInput();
    }
  });

  input.addEventListener("input", () => {
    autoGrow();
    updateComposer();
  });

  let pollTimer = null;
  let pollDelay = POLL_MS;
  let polling = false;

  function stopPolling() {
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  }

  function schedulePoll(delay) {
    stopPolling();
    // A hidden tab does not poll; it catches up as soon as it is shown again.
    if (document.visibilityState !== "visible") return;
    pollTimer = setTimeout(poll, delay);
  }

  // Each staff reply is delivered once by the server, so whatever arrives here is new.
  async function poll() {
    pollTimer = null;
    if (polling) return;
    polling = true;
    let ok = false;
    try {
      const response = await fetch("/api/chat/updates?sender=" + encodeURIComponent(sender), {
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const body = await response.json();
        if (Array.isArray(body)) {
          render(body, false);
          ok = true;
        }
      }
    } catch (_) {
      ok = false;
    } finally {
      polling = false;
    }
    pollDelay = ok ? POLL_MS : Math.min(pollDelay * 2, MAX_POLL_MS);
    schedulePoll(pollDelay);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") schedulePoll(0);
    else stopPolling();
  });

  updateComposer();
  input.focus();
  schedulePoll(POLL_MS);
})();
