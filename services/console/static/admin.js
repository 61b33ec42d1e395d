// A rules file chosen on the phone or computer is read into the text box: the form posts the text either way,
// so loading rules works without JavaScript too (by pasting), and the picker only shows when this script runs.
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("rules_file_box");
  var picker = document.getElementById("rules_file");
  var text = document.getElementById("rules_text");
  if (!box || !picker || !text) {
    return;
  }
  box.hidden = false;
  picker.addEventListener("change", function () {
    var file = picker.files && picker.files[0];
    if (!file) {
      return;
    }
    var reader = new FileReader();
    reader.onload = function () {
      text.value = reader.result;
      document.getElementById("rules_filename").value = file.name;
      text.dispatchEvent(new Event("input"));
    };
    reader.readAsText(file, "utf-8");
  });
});
