// Do not refresh the inbox while someone is typing a reason or has a decline box open: the poll waits.
document.addEventListener("htmx:confirm", function (event) {
  var list = event.detail.elt;
  if (list.id === "inbox-list" && list.querySelector("details[open], input:focus, button:focus")) {
    event.preventDefault();
  }
});
