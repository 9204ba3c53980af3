// Staff page of one customer, /customers/{id}: reads the staff sign-in the chat page keeps
// (staff-session.js), calls GET /api/customers/{id} and shows the 360 view (the body of
// crm_store/customer360.py CustomerView.to_json). Plain JS, no dependencies (offline machines);
// every value is set with textContent, never parsed as HTML.
(() => {
  "use strict";

  const ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
  const CHANNELS = { web: "网页聊天", wechat: "微信", sms: "短信", email: "邮件" };
  const NONE = "无";

  const status = document.getElementById("status");
  const content = document.getElementById("content");
  const customerId = decodeURIComponent(location.pathname.split("/").pop() || "");

  // --- small helpers (chineseDate and money as in chat.js) ---------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    // A value given but missing reads 无; no value at all leaves the element empty.
    if (arguments.length > 2) node.textContent = text === null || text === undefined || text === "" ? NONE : String(text);
    return node;
  }

  function chineseDate(iso) {
    const match = typeof iso === "string" ? /^(\d{4})-(\d{2})-(\d{2})/.exec(iso) : null;
    return match ? match[1] + "年" + Number(match[2]) + "月" + Number(match[3]) + "日" : "";
  }

  function money(value) {
    return typeof value === "number" ? "¥" + value.toLocaleString("zh-CN", { maximumFractionDigits: 2 }) : "";
  }

  function list(value) {
    return Array.isArray(value) ? value.filter((v) => typeof v === "object" && v !== null) : [];
  }

  // --- sign-in and notices -----------------------------------------------------------------------



  // action: {text, href} for a link, {text, retry} for a button.
  function showNotice(message, action) {
    content.hidden = true;
    content.replaceChildren();
    const parts = [el("p", "", message)];
    if (action && action.href) {
      const link = el("a", "action", action.text);
      link.href = action.href;
      parts.push(link);
    } else if (action && action.retry) {
      const button = el("button", "action", action.text);
      button.type = "button";
      button.addEventListener("click", action.retry);
      parts.push(button);
    }
    status.replaceChildren(...parts);
    status.hidden = false;
  }

  function askToSignIn(expired) {
    showNotice(
      expired
        ? "您的员工登录已过期或已失效，请重新登录后再查看客户档案。"
        : "查看客户档案需要先登录员工账号：请回到对话页，点右上角的「员工登录」。",
      { text: "员工登录", href: "/" },
    );
  }

  // --- the view ----------------------------------------------------------------------------------

  function section(id, title, ...body) {
    const node = el("section", "panel");
    node.id = id;
    node.append(el("h3", "", title), ...body);
    return node;
  }

  function none() {
    return el("p", "empty", NONE);
  }

  function facts(rows) {
    const dl = el("dl", "facts");
    for (const [label, value] of rows) dl.append(el("dt", "", label), el("dd", "", value));
    return dl;
  }

  // columns: [label, className]; each row holds one text per column.
  function table(columns, rows) {
    const node = el("table", "rows");
    const headRow = el("tr");
    for (const [label, className] of columns) {
      const th = el("th", className, label);
      th.scope = "col";
      headRow.append(th);
    }
    const body = el("tbody");
    for (const row of rows) {
      const tr = el("tr");
      columns.forEach(([label, className], i) => {
        const td = el("td", className, row[i]);
        td.dataset.label = label; // shown before each value on narrow screens (customer.css)
        tr.append(td);
      });
      body.append(tr);
    }
    const head = el("thead");
    head.append(headRow);
    node.append(head, body);
    return node;
  }

  function person(v, p) {
    const head = el("header", "person");
    const tags = el("p", "tags");
    tags.append(el("span", "tag", "价值等级：" + (v.value_tier || NONE)), el("span", "tag", "生命周期：" + (v.lifecycle || NONE)));
    if (p.opt_out) tags.append(el("span", "tag warn", "已退订"));
    head.append(
      el("h2", "name", p.name || v.customer_id),
      el("p", "company", p.company || (p.type ? p.type + "客户" : NONE)),
      tags,
      el("p", "customer-id", "客户编号 " + v.customer_id),
    );
    return head;
  }

  function contactSection(p) {
    const owner = p.owner_name ? p.owner_name + (p.owner_id ? "（" + p.owner_id + "）" : "") : p.owner_id;
    const rows = [
      ["电话", p.phone],
      ["邮箱", p.email],
      ["城市/地区", [p.city, p.region].filter(Boolean).join(" · ")],
      ["负责人", owner],
      ["偏好渠道", CHANNELS[p.channel_pref] || p.channel_pref],
    ];
    if (p.opt_out) rows.push(["营销", "已退订，请勿主动发送营销信息"]);
    const parts = [facts(rows)];
    if (p.contact_masked) parts.push(el("p", "hint", "电话和邮箱只向客户负责人完整显示。"));
    return section("contact", "联系方式", ...parts);
  }

  function spendSection(v) {
    let last = chineseDate(v.last_order_date);
    if (last && typeof v.days_since_last_order === "number") {
      last += v.days_since_last_order === 0 ? "（今天）" : "（" + v.days_since_last_order + " 天前）";
    }
    return section(
      "spend",
      "消费",
      facts([
        ["累计消费", money(v.total_spend)],
        ["订单数", typeof v.order_count === "number" ? v.order_count + " 笔" : ""],
        ["最近下单", last],
      ]),
    );
  }

  function ordersSection(v) {
    const orders = list(v.recent_orders);
    if (orders.length === 0) return section("orders", "最近订单", none());
    const columns = [["订单号"], ["日期"], ["状态"], ["金额", "num"], ["商品"]];
    const rows = orders.map((o) => [
      o.order_id,
      chineseDate(o.order_date),
      o.status,
      money(o.amount),
      Array.isArray(o.items) ? o.items.join("、") : "",
    ]);
    return section("orders", "最近订单", table(columns, rows));
  }

  function ticketsSection(v) {
    const tickets = list(v.open_tickets);
    if (tickets.length === 0) return section("tickets", "未结工单", none());
    const columns = [["工单号"], ["类别"], ["优先级"], ["状态"], ["提交日期"], ["内容"]];
    const rows = tickets.map((t) => [t.ticket_id, t.category, t.priority, t.status, chineseDate(t.opened_at), t.summary]);
    return section("tickets", "未结工单", table(columns, rows));
  }

  function lastContactSection(v) {
    const c = v.last_contact && typeof v.last_contact === "object" ? v.last_contact : null;
    const nextDate = chineseDate(v.next_date);
    const next = v.next_step ? v.next_step + (nextDate ? "（" + nextDate + "）" : "") : nextDate;
    if (!c && !next) return section("last-contact", "最近联系", none());
    const rows = c
      ? [
          ["日期", chineseDate(c.occurred_at)],
          ["方式", c.kind],
          ["联系人", c.employee_name],
          ["内容", c.summary],
        ]
      : [["最近联系", NONE]];
    rows.push(["下一步", next]);
    return section("last-contact", "最近联系", facts(rows));
  }

  function opportunitiesSection(v) {
    const opportunities = list(v.open_opportunities);
    if (opportunities.length === 0) return section("opportunities", "商机", none());
    const columns = [["商机"], ["阶段"], ["金额", "num"], ["赢率", "num"], ["加权金额", "num"], ["预计成交"]];
    const rows = opportunities.map((o) => [
      o.name,
      o.stage,
      money(o.amount),
      typeof o.probability === "number" ? o.probability + "%" : "",
      money(o.weighted_amount),
      chineseDate(o.expected_close),
    ]);
    const total = el("p", "total", "加权合计：" + (money(v.weighted_pipeline) || NONE));
    return section("opportunities", "商机", table(columns, rows), total);
  }

  function preferencesSection(v) {
    const items = Array.isArray(v.preferences) ? v.preferences.filter((x) => typeof x === "string" && x !== "") : [];
    if (items.length === 0) return section("preferences", "偏好", none());
    const ul = el("ul", "plain-list");
    for (const item of items) ul.append(el("li", "", item));
    return section("preferences", "偏好", ul);
  }

  function notesSection(v) {
    return section("notes", "备注", v.notes ? el("p", "notes", v.notes) : none());
  }

  function birthdaySection(v) {
    const day = chineseDate(v.next_birthday);
    if (!day) return section("birthday", "下次生日", none());
    const days = v.days_to_birthday;
    const when = typeof days === "number" ? (days === 0 ? "（就是今天）" : "（" + days + " 天后）") : "";
    return section("birthday", "下次生日", el("p", "", day + when));
  }

  function render(v) {
    const p = v.profile;
    document.title = (p.name || v.customer_id) + " · 客户档案 · 小助手";
    content.replaceChildren(
      person(v, p),
      contactSection(p),
      spendSection(v),
      ordersSection(v),
      ticketsSection(v),
      lastContactSection(v),
      opportunitiesSection(v),
      preferencesSection(v),
      notesSection(v),
      birthdaySection(v),
    );
    status.hidden = true;
    content.hidden = false;
  }

  // --- loading -----------------------------------------------------------------------------------

  async function load() {
    if (!ID_PATTERN.test(customerId)) {
      showNotice("没有找到这位客户，或不在您的权限范围内。");
      return;
    }
    const { staff, expired } = staffSession.load();
    if (!staff) {
      askToSignIn(expired);
      return;
    }
    showNotice("正在加载客户档案…");
    const retry = { text: "重试", retry: load };
    let response;
    let view = null;
    try {
      response = await fetch("/api/customers/" + encodeURIComponent(customerId), {
        cache: "no-store",
        headers: { Accept: "application/json", Authorization: "Bearer " + staff.token },
      });
    } catch (_) {
      showNotice("网络连接异常，暂时无法加载客户档案。请检查网络后重试。", retry);
      return;
    }
    if (response.ok) {
      try {
        view = await response.json();
      } catch (_) {
        view = null;
      }
    }
    if (response.status === 401) {
      staffSession.save(null); // the chat page would end it the same way
      askToSignIn(true);
    } else if (response.status === 403) {
      showNotice("您的账号没有查看客户档案的权限。");
    } else if (response.status === 404) {
      showNotice("没有找到这位客户，或不在您的权限范围内。");
    } else if (view && typeof view === "object" && view.profile && typeof view.profile === "object") {
      render(view);
    } else {
      showNotice("抱歉，客户档案暂时无法加载，请稍后重试。", retry);
    }
  }

  load();
})();
