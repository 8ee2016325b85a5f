/* Copy buttons of the new-token page (progressive enhancement: without JavaScript the token and
   the snippets stay selectable text, and the buttons stay hidden). Loaded from /static/ so the
   Content-Security-Policy can forbid inline scripts. */
(function () {
  "use strict";
  var status = document.getElementById("copy-status");

  function say(key) {
    if (!status) { return; }
    status.textContent = "";
    window.setTimeout(function () { status.textContent = status.getAttribute(key) || ""; }, 50);
  }

  function textOf(target) {
    return target.value !== undefined ? target.value : target.textContent;
  }

  function fallbackCopy(target) {
    if (target.select) {
      target.select();
    } else {
      var range = document.createRange();
      range.selectNodeContents(target);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function copy(target) {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(textOf(target)).then(
        function () { say("data-copied"); },
        function () { say(fallbackCopy(target) ? "data-copied" : "data-failed"); }
      );
      return;
    }
    say(fallbackCopy(target) ? "data-copied" : "data-failed");
  }

  var buttons = document.querySelectorAll("button[data-copy]");
  Array.prototype.forEach.call(buttons, function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) { return; }
    button.hidden = false;
    button.addEventListener("click", function () { copy(target); });
  });
}());
