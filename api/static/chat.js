// Web chat of 小助手: talks to POST /api/chat, and polls GET /api/chat/updates for replies from
// staff while a person has the conversation and for proactive care's messages (a signed-in
// employee's care notices; a verified customer's web-inbox messages). Plain JS, no dependencies
// (offline machines).
//
// Staff mode: 员工登录 signs in with POST /api/auth/login; the token is kept in sessionStorage (gone
// when the tab closes) and sent as `Authorization: Bearer` on every chat call. The server decides
// the role from the token alone; the page only shows who is signed in and renders the bot's cards
// (`custom.card`: {"card": kind, "data": {...}}).
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
  const subtitle = document.getElementById("subtitle");
  const staffWho = document.getElementById("staff-who");
  const staffToggle = document.getElementById("staff-toggle");
  const staffLogout = document.getElementById("staff-logout");
  const staffForm = document.getElementById("staff-login");
  const staffUsername = document.getElementById("staff-username");
  const staffPassword = document.getElementById("staff-password");
  const staffError = document.getElementById("staff-error");
  const staffSubmit = document.getElementById("staff-submit");
  const staffCancel = document.getElementById("staff-cancel");

  const ROLE_NAMES = { sales: "销售", manager: "经理", service: "客服", admin: "管理员" };
  const CUSTOMER_SUBTITLE = subtitle.textContent;
  const STAFF_SUBTITLE = "员工模式 · 客户档案 · 拜访记录 · 商机 · 提醒";
  const SESSION_EXPIRED = "员工登录已过期，请重新登录。";

  let busy = false;
  let staff = staffSession.load().staff;

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

  // --- staff sign-in --------------------------------------------------------------------------

  function withAuth(headers) {
    return staff ? Object.assign({}, headers, { Authorization: "Bearer " + staff.token }) : headers;
  }

  function showStaff() {
    const signedIn = staff !== null;
    staffWho.hidden = !signedIn;
    staffLogout.hidden = !signedIn;
    staffToggle.hidden = signedIn;
    staffWho.textContent = signedIn ? staff.name + "（" + (ROLE_NAMES[staff.role] || staff.role) + "）" : "";
    subtitle.textContent = signedIn ? STAFF_SUBTITLE : CUSTOMER_SUBTITLE;
    document.body.classList.toggle("staff-mode", signedIn);
  }

  function openLogin(open) {
    staffForm.hidden = !open;
    staffToggle.setAttribute("aria-expanded", String(open));
    staffError.hidden = true;
    if (open) staffUsername.focus();
    else input.focus();
  }

  function signOut(notice) {
    staff = null;
    staffSession.save(staff);
    showStaff();
    if (notice) addBubble("bot", notice, true);
  }

  async function signIn(event) {
    event.preventDefault();
    const username = staffUsername.value.trim();
    const password = staffPassword.value;
    if (username === "" || password === "") return;
    staffSubmit.disabled = true;
    staffError.hidden = true;
    try {
      const response = await fetch("/api/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username, password }),
      });
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        body = null;
      }
      if (response.ok && body && typeof body.access_token === "string") {
        staff = {
          token: body.access_token,
          employeeId: body.employee_id,
          name: body.name,
          role: body.role,
          expiresAt: Date.now() + body.expires_in * 1000,
        };
        staffSession.save(staff);
        showStaff();
        staffPassword.value = "";
        openLogin(false);
        addBubble("bot", staff.name + "，您好！已进入员工模式：可以查客户档案、记录拜访、更新客户信息和商机、查看今天的提醒。", false);
      } else {
        staffError.textContent = body && typeof body.detail === "string" ? body.detail : "登录失败，请检查工号和密码。";
        staffError.hidden = false;
        staffPassword.select();
      }
    } catch (_) {
      staffError.textContent = NETWORK_ERROR;
      staffError.hidden = false;
    } finally {
      staffSubmit.disabled = false;
    }
  }

  // A saved sign-in is checked once: the role may have changed, or the password (which ends it).
  async function checkStaff() {
    if (!staff) return;
    try {
      const response = await fetch("/api/auth/me", { headers: withAuth({ Accept: "application/json" }) });
      if (response.status === 401) {
        signOut(SESSION_EXPIRED);
        return;
      }
      if (response.ok) {
        const me = await response.json();
        staff.name = me.name;
        staff.role = me.role;
        staffSession.save(staff);
        showStaff();
      }
    } catch (_) {
      // Offline for now: keep the sign-in; the next chat call tells.
    }
  }

  staffToggle.addEventListener("click", () => openLogin(staffForm.hidden));
  staffCancel.addEventListener("click", () => openLogin(false));
  staffForm.addEventListener("submit", signIn);
  staffLogout.addEventListener("click", () => signOut("已退出员工登录。"));

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

  // --- staff cards ----------------------------------------------------------------------------

  function chineseDate(iso) {
    const match = typeof iso === "string" ? /^(\d{4})-(\d{2})-(\d{2})/.exec(iso) : null;
    return match ? match[1] + "年" + Number(match[2]) + "月" + Number(match[3]) + "日" : "";
  }

  function money(value) {
    return typeof value === "number" ? "¥" + value.toLocaleString("zh-CN", { maximumFractionDigits: 2 }) : "";
  }

  function plain(value) {
    if (value === null || value === undefined || value === "") return "";
    if (Array.isArray(value)) return value.map(plain).filter((v) => v !== "").join("；");
    if (typeof value === "object") {
      return Object.keys(value)
        .map((key) => key + "：" + plain(value[key]))
        .join("，");
    }
    if (typeof value === "boolean") return value ? "是" : "否";
    return String(value);
  }

  function customer360Rows(d) {
    const p = d.profile || {};
    const contact = d.last_contact;
    const tickets = Array.isArray(d.open_tickets) ? d.open_tickets : [];
    const opportunities = Array.isArray(d.open_opportunities) ? d.open_opportunities : [];
    const nextDate = chineseDate(d.next_date);
    const next = d.next_step ? d.next_step + (nextDate ? "（" + nextDate + "）" : "") : nextDate;
    return [
      ["公司", p.company],
      ["电话", p.phone],
      ["价值等级", d.value_tier],
      ["生命周期", d.lifecycle],
      ["累计消费", money(d.total_spend)],
      ["订单数", typeof d.order_count === "number" ? d.order_count + " 笔" : ""],
      ["未结工单", tickets.length ? tickets.map((t) => [t.ticket_id, t.category, t.status].filter(Boolean).join(" ")).join("；") : "无"],
      [
        "最近联系",
        contact ? [chineseDate(contact.occurred_at), contact.kind, contact.summary, contact.employee_name].filter(Boolean).join(" · ") : "无",
      ],
      ["下一步", next],
      [
        "商机",
        opportunities.length
          ? opportunities.map((o) => [o.name, o.stage, money(o.amount)].filter(Boolean).join(" · ")).join("；")
          : "无",
      ],
      ["偏好", Array.isArray(d.preferences) ? d.preferences.join("、") : ""],
      ["下次生日", d.next_birthday ? chineseDate(d.next_birthday) + (typeof d.days_to_birthday === "number" ? "（" + d.days_to_birthday + " 天后）" : "") : ""],
    ];
  }

  // A manager's answer: the text bubble holds the figures; the card links to their chart.
  function addDashboardLink(data) {
    if (typeof data.dashboard !== "string" || !data.dashboard.startsWith("/dashboard?")) return;
    const row = addRow("bot");
    const link = document.createElement("a");
    link.className = "dashboard-link";
    link.href = data.dashboard;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = "在看板中查看图表";
    row.appendChild(link);
    scrollToEnd();
  }

  function addCard(card) {
    const data = card.data && typeof card.data === "object" ? card.data : {};
    if (card.card === "manager_answer") {
      addDashboardLink(data);
      return;
    }
    const is360 = card.card === "customer_360";
    const title = is360
      ? ((data.profile && data.profile.name) || data.customer_id || "客户") + " · 客户档案"
      : card.card;
    const row = addRow("bot");
    const section = document.createElement("section");
    section.className = "card";
    section.setAttribute("aria-label", title);
    const heading = document.createElement("h3");
    heading.textContent = title;
    section.appendChild(heading);
    const list = document.createElement("dl");
    const rows = is360 ? customer360Rows(data) : Object.keys(data).map((key) => [key, data[key]]);
    for (const [label, value] of rows) {
      const text = plain(value);
      if (text === "") continue;
      const term = document.createElement("dt");
      term.textContent = label;
      const detail = document.createElement("dd");
      detail.textContent = text;
      list.append(term, detail);
    }
    section.appendChild(list);
    if (is360 && typeof data.customer_id === "string" && /^[A-Za-z0-9_-]+$/.test(data.customer_id)) {
      const link = document.createElement("a");
      link.href = "/customers/" + encodeURIComponent(data.customer_id);
      link.textContent = "查看完整档案";
      section.appendChild(link);
    }
    row.appendChild(section);
    scrollToEnd();
  }

  function render(botMessages, isError) {
    for (const message of botMessages) {
      if (!message || typeof message !== "object") continue;
      if (typeof message.text === "string" && message.text !== "") addBubble("bot", message.text, isError);
      if (message.image) addImage(message.image);
      if (Array.isArray(message.buttons)) addButtons(message.buttons);
      // Cards are the staff side's; other `custom` payloads are for richer clients.
      const custom = message.custom;
      if (staff && custom && typeof custom === "object" && typeof custom.card === "string") addCard(custom);
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
        headers: withAuth({ "Content-Type": "application/json" }),
        body: JSON.stringify({ sender, message, metadata: { channel: "web" } }),
      });
      if (response.status === 401 && staff) {
        typing.remove();
        signOut(SESSION_EXPIRED);
        return;
      }
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

  // Each staff reply and care message is delivered once by the server, so whatever arrives here is new.
  async function poll() {
    pollTimer = null;
    if (polling) return;
    polling = true;
    let ok = false;
    try {
      const response = await fetch("/api/chat/updates?sender=" + encodeURIComponent(sender), {
        cache: "no-store",
        headers: withAuth({ Accept: "application/json" }),
      });
      if (response.status === 401 && staff) signOut(SESSION_EXPIRED);
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

  showStaff();
  checkStaff();
  updateComposer();
  input.focus();
  schedulePoll(POLL_MS);
})();
