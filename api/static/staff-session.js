// The staff sign-in shared by the chat page, the customer page and the dashboard: the token of
// POST /api/auth/login with its expiry ({token, expiresAt, employeeId, name, role}), kept in
// sessionStorage under one key, so that signing in on one page signs in the others and closing the
// tab signs out. Where storage is disabled, a sign-in lasts as long as its page.
window.staffSession = (() => {
  "use strict";

  const KEY = "xiaozhushou.staff";

  // The saved sign-in if it is still valid; an expired one is removed (`expired` says so).
  function load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
      if (saved && typeof saved.token === "string" && saved.expiresAt > Date.now()) {
        return { staff: saved, expired: false };
      }
      sessionStorage.removeItem(KEY);
      return { staff: null, expired: saved !== null };
    } catch (_) {
      return { staff: null, expired: false };
    }
  }

  // Keep a sign-in, or forget it with null.
  function save(staff) {
    try {
      if (staff) sessionStorage.setItem(KEY, JSON.stringify(staff));
      else sessionStorage.removeItem(KEY);
    } catch (_) {
      // Storage disabled: nothing kept.
    }
  }

  return Object.freeze({ load, save });
})();
