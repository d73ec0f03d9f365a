// dagrun ui: the only script. A running run's page listens to its events (server-sent) and
// reloads when the run changes.
(function () {
  var run = document.getElementById("run");
  if (run && run.dataset.live && window.EventSource) {
    var first = true;
    var es = new EventSource("/runs/" + encodeURIComponent(run.dataset.run) + "/events");
    es.onmessage = function () {
      if (first) { first = false; return; }
      es.close();
      location.reload();
    };
  }
})();
