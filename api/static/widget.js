// Rasa's standard web widget (rasa-webchat, served unmodified at /widget/webchat.js), pointed at
// the API's Socket.IO channel instead of at Rasa: every turn goes through the API's gateway.
"use strict";

(function () {
  const container = document.getElementById("webchat");
  window.WebChat.default(
    {
      selector: "#webchat",
      socketUrl: window.location.origin,
      socketPath: container.dataset.socketPath,
      customData: { language: "zh" },
      title: "小助手",
      subtitle: "在线客服",
      inputTextFieldHint: "请输入您的问题…",
      connectingText: "正在连接…",
      showMessageDate: false,
      // The conversation survives a reload of the page, not the closing of the tab.
      params: { storage: "session" },
    },
    null
  );
})();
