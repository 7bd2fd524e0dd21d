// Click to enlarge: every figure image opens at its native size in a new tab.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("figure img, div.figure img").forEach(function (img) {
    if (img.closest("a")) {
      return;
    }
    var link = document.createElement("a");
    link.href = img.currentSrc || img.src;
    link.target = "_blank";
    link.rel = "noopener";
    link.className = "mrsisr-enlarge";
    link.title = "Open the figure at full size";
    img.parentNode.insertBefore(link, img);
    link.appendChild(img);
  });
});
