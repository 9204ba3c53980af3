// The managers' dashboard of 小助手: the standing KPIs (GET /api/analytics/kpis), the service
// metrics (GET /api/analytics/service-metrics, managers and admins) and one question's chart and
// table (POST /api/analytics/ask, or POST /api/analytics/query for the `?spec=` link a chat answer
// carries: the spec as base64url JSON). Charts are drawn by plotly.js, served by the API itself
// (/static/vendor/plotly.min.js): nothing is loaded from the internet.
//
// Sign-in is the chat page's (staff-session.js), so an employee
// signed in on the chat is signed in here; otherwise a small form signs in and keeps it the same way.
(() => {
  "use strict";

  const ROLE_NAMES = { sales: "销售", manager: "经理", service: "客服", admin: "管理员" };
  const NETWORK_ERROR = "网络连接异常，请检查网络后重试。";
  const GENERIC_ERROR = "抱歉，数据暂时无法加载，请稍后再试。";
  const COLOURS = ["#1f6feb", "#0f5132", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#6b7280"];

  const $ = (id) => document.getElementById(id);
  const statusBox = $("status");
  const content = $("content");
  const signInForm = $("sign-in");
  const signOutButton = $("sign-out");

  let staff = staffSession.load().staff;
  let previousSpec = null;

  // --- sign-in (shared with the chat page) ------------------------------------------------------

  function showStatus(message) {
    statusBox.textContent = message || "";
    statusBox.hidden = !message;
  }

  function showSignedIn() {
    const signedIn = staff !== null;
    signInForm.hidden = signedIn;
    content.hidden = !signedIn;
    signOutButton.hidden = !signedIn;
    $("who").textContent = signedIn
      ? `${staff.name || staff.employeeId} · ${ROLE_NAMES[staff.role] || "员工"}`
      : "小助手 · 员工模式";
  }

  function signOut(message) {
    staff = null;
    staffSession.save(staff);
    showSignedIn();
    showStatus(message || "");
  }

  async function signIn(event) {
    event.preventDefault();
    const username = $("username").value.trim();
    const password = $("password").value;
    if (!username || !password) return;
    const submit = $("sign-in-submit");
    const error = $("sign-in-error");
    submit.disabled = true;
    error.hidden = true;
    try {
      const response = await fetch("/api/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username, password }),
      });
      const body = await response.json().catch(() => null);
      if (response.ok && body && typeof body.access_token === "string") {
        staff = {
          token: body.access_token,
          employeeId: body.employee_id,
          name: body.name,
          role: body.role,
          expiresAt: Date.now() + body.expires_in * 1000,
        };
        staffSession.save(staff);
        $("password").value = "";
        start();
      } else {
        error.textContent = body && typeof body.detail === "string" ? body.detail : "登录失败，请检查工号和密码。";
        error.hidden = false;
      }
    } catch (_) {
      error.textContent = NETWORK_ERROR;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  }

  // --- calls --------------------------------------------------------------------------------------

  // {ok, status, body}; a 401 ends the sign-in (expired, or the password changed).
  async function call(path, body) {
    const init = { headers: { Accept: "application/json", Authorization: "Bearer " + staff.token } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => null);
    if (response.status === 401) signOut("登录已过期，请重新登录。");
    return { ok: response.ok, status: response.status, body: data };
  }

  function detailOf(body) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail) && body.detail[0] && typeof body.detail[0].msg === "string") {
      return body.detail[0].msg;
    }
    return GENERIC_ERROR;
  }

  // --- KPIs and service metrics ---------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function card(label, value, before, trend) {
    const box = el("div", "kpi");
    box.append(el("p", "label", label), el("p", "value", value));
    if (before) {
      const line = el("p", "before", before);
      if (trend) line.classList.add(trend);
      box.append(line);
    }
    return box;
  }

  function trendOf(now, before) {
    if (typeof now !== "number" || typeof before !== "number" || now === before) return "";
    return now > before ? "up" : "down";
  }

  async function loadKpis() {
    const box = $("kpis");
    box.replaceChildren(el("p", "hint", "正在加载…"));
    try {
      const { ok, body } = await call("/api/analytics/kpis");
      if (!ok || !body) {
        box.replaceChildren(el("p", "hint", detailOf(body)));
        return;
      }
      $("kpi-period").textContent = `${body.current_period.label}，与${body.previous_period.label}对比`;
      box.replaceChildren(
        ...body.kpis.map((kpi) => {
          const arrow = { up: "↑ ", down: "↓ ", "": "" }[trendOf(kpi.current, kpi.previous)];
          return card(kpi.label, kpi.current_text, `${arrow}上月 ${kpi.previous_text}`, trendOf(kpi.current, kpi.previous));
        }),
      );
    } catch (_) {
      box.replaceChildren(el("p", "hint", NETWORK_ERROR));
    }
  }

  function percent(rate) {
    return typeof rate === "number" ? `${(rate * 100).toFixed(1)}%` : "—";
  }

  const CHANNEL_NAMES = { web: "网页聊天", socketio: "网页组件", wechat: "微信公众号", wecom: "企业微信" };

  function byChannel(counts) {
    return Object.entries(counts || {})
      .sort((a, b) => b[1] - a[1])
      .map(([channel, count]) => `${CHANNEL_NAMES[channel] || channel} ${count}`)
      .join(" · ");
  }

  async function loadServiceMetrics() {
    const section = $("service");
    if (staff.role !== "manager" && staff.role !== "admin") {
      section.hidden = true;
      return;
    }
    try {
      const { ok, body } = await call("/api/analytics/service-metrics?days=30");
      if (!ok || !body) {
        section.hidden = true;
        return;
      }
      section.hidden = false;
      $("service-period").textContent = `${body.period.label}（${body.period.start} 至 ${body.period.end}）`;
      const csat = typeof body.csat_average === "number" ? `${body.csat_average.toFixed(2)} 分` : "—";
      $("service-metrics").replaceChildren(
        card("会话数", `${body.conversations}`, byChannel(body.conversations_by_channel)),
        card("自助解决率", percent(body.deflection_rate), `${body.deflected_conversations} 个会话`),
        card("未理解率", percent(body.fallback_rate), `${body.fallback_turns} / ${body.user_turns} 轮`),
        card("转人工率", percent(body.handoff_rate), `${body.handoff_conversations} 个会话`),
        card("服务满意度", csat, `工单与人工会话 ${body.csat_ratings} 条评价`),
        card("关怀送达率", percent(body.care_delivery_rate), `成功 ${body.care_sent}，失败 ${body.care_failed}`),
      );
    } catch (_) {
      section.hidden = true;
    }
  }

  // --- one question: its chart and table -------------------------------------------------------

  const TIME_DIMENSIONS = ["day", "week", "month", "quarter", "year"];

  function traces(kind, spec, result) {
    const values = result.rows.map((row) => row[row.length - 1]);
    const labelsOf = (row) => row.slice(0, -1).join(" · ");
    if (kind === "pie") {
      return [{ type: "pie", labels: result.display_rows.map(labelsOf), values, hole: 0.35, sort: false }];
    }
    const timeAt = spec.group_by.findIndex((d) => TIME_DIMENSIONS.includes(d));
    if (kind === "line" && timeAt >= 0 && spec.group_by.length > 1) {
      // One line per value of the other dimensions, over time.
      const series = new Map();
      result.display_rows.forEach((row, i) => {
        const cells = row.slice(0, -1);
        const x = cells[timeAt];
        const name = cells.filter((_, j) => j !== timeAt).join(" · ");
        if (!series.has(name)) series.set(name, { x: [], y: [] });
        series.get(name).x.push(x);
        series.get(name).y.push(values[i]);
      });
      return Array.from(series, ([name, s], i) => ({
        type: "scatter", mode: "lines+markers", name, x: s.x, y: s.y, line: { color: COLOURS[i % COLOURS.length] },
      }));
    }
    const x = result.display_rows.map(labelsOf);
    if (kind === "line") {
      return [{ type: "scatter", mode: "lines+markers", x, y: values, line: { color: COLOURS[0] } }];
    }
    return [{ type: "bar", x, y: values, marker: { color: COLOURS[0] } }];
  }

  function drawChart(kind, spec, result) {
    const box = $("chart");
    if (!kind || !result || result.rows.length === 0 || typeof Plotly === "undefined") {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    const layout = {
      margin: { l: 56, r: 12, t: 12, b: 64 },
      showlegend: kind === "pie" || (kind === "line" && spec.group_by.length > 1),
      legend: { orientation: "h" },
      yaxis: { title: { text: `${result.metric_label}（${result.unit}）` }, rangemode: "tozero" },
      xaxis: { automargin: true, type: "category" },
      font: { family: "PingFang SC, Microsoft YaHei, Noto Sans CJK SC, sans-serif" },
    };
    Plotly.react(box, traces(kind, spec, result), layout, { displayModeBar: false, responsive: true });
  }

  function drawTable(result) {
    const table = $("table");
    if (!result || result.rows.length === 0 || result.columns.length < 2) {
      table.hidden = true;
      return;
    }
    const head = el("tr");
    result.columns.forEach((name, i) => head.append(el("th", i === result.columns.length - 1 ? "num" : "", name)));
    const rows = result.display_rows.map((cells) => {
      const line = el("tr");
      cells.forEach((cell, i) => line.append(el("td", i === cells.length - 1 ? "num" : "", cell)));
      return line;
    });
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    tbody.append(...rows);
    table.replaceChildren(thead, tbody);
    table.hidden = false;
  }

  function showAnswer(answer) {
    $("answer").hidden = false;
    // The chat's answer carries a text table after its first line; here the table is drawn instead.
    const tabled = answer.result && answer.result.rows.length > 0 && answer.result.columns.length > 1;
    $("answer-text").textContent = tabled ? answer.text.split("\n")[0] : answer.text;
    const options = $("options");
    options.replaceChildren(
      ...(answer.options || []).map((option) => {
        const button = el("button", "", option);
        button.type = "button";
        button.addEventListener("click", () => {
          $("question").value = option;
          askQuestion();
        });
        return button;
      }),
    );
    options.hidden = !answer.options || answer.options.length === 0;
    if (answer.kind === "result" && answer.spec) previousSpec = answer.spec;
    drawChart(answer.chart, answer.spec, answer.result);
    drawTable(answer.result);
  }

  function showRefusal(message) {
    showAnswer({ kind: "unsupported", text: message, options: [], chart: null, spec: null, result: null });
  }

  async function askQuestion(event) {
    if (event) event.preventDefault();
    const question = $("question").value.trim();
    if (!question) return;
    const submit = $("ask-submit");
    submit.disabled = true;
    try {
      const { ok, body } = await call("/api/analytics/ask", { question, previous: previousSpec });
      if (ok && body) showAnswer(body);
      else if (staff) showRefusal(detailOf(body));
    } catch (_) {
      showRefusal(NETWORK_ERROR);
    } finally {
      submit.disabled = false;
    }
  }

  // The spec of a chat answer's link: base64url of its UTF-8 JSON, without padding.
  function specFromUrl() {
    const encoded = new URLSearchParams(window.location.search).get("spec");
    if (!encoded) return null;
    try {
      const base64 = encoded.replace(/-/g, "+").replace(/_/g, "/");
      const padded = base64 + "===".slice((base64.length + 3) % 4);
      const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (_) {
      return null;
    }
  }

  async function runLinkedSpec() {
    const linked = new URLSearchParams(window.location.search).has("spec");
    const spec = specFromUrl();
    if (!linked) return;
    if (!spec) {
      showRefusal("抱歉，这个图表链接不完整，请回到对话中重新打开。");
      return;
    }
    try {
      const { ok, body } = await call("/api/analytics/query", { spec });
      if (ok && body) showAnswer(body);
      else if (staff) showRefusal(detailOf(body));
    } catch (_) {
      showRefusal(NETWORK_ERROR);
    }
  }

  function start() {
    showStatus("");
    showSignedIn();
    if (!staff) return;
    runLinkedSpec();
    loadKpis();
    loadServiceMetrics();
  }

  signInForm.addEventListener("submit", signIn);
  signOutButton.addEventListener("click", () => signOut("您已退出登录。"));
  $("ask").addEventListener("submit", askQuestion);
  start();
  if (!staff) showStatus("请先登录员工账号。");
})();
