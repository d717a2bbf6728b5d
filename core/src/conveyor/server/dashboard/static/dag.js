/* A running run's DAG is swapped whole every second (htmx). A click whose press and release straddle a swap
   would end on a node that is gone and open nothing: while a pointer is pressed on the DAG, a refresh is not
   swapped in (the next one is). */
(function () {
  "use strict";
  var pressed = false;

  document.addEventListener(
    "pointerdown",
    function (e) {
      pressed = !!(e.target && e.target.closest && e.target.closest("#dag"));
    },
    true
  );
  function release() {
    pressed = false;
  }
  document.addEventListener("pointerup", release, true);
  document.addEventListener("pointercancel", release, true);
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (pressed && e.detail.target && e.detail.target.id === "dag") e.detail.shouldSwap = false;
  });
})();
