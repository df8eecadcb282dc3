// Build the UI into the Python package (src/yizhangtu/web/static), served at /static.
// Output names carry no hashes so that a rebuild of the same sources gives the same files.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const worker = fileURLToPath(new URL("./node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs", import.meta.url));

// MapLibre 6 loads its worker as a separate ES module next to itself; ship it beside the chunks.
function maplibreWorker() {
  return {
    name: "yz-maplibre-worker",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: "assets/maplibre-gl-worker.mjs", source: readFileSync(worker, "utf8") });
    },
  };
}

export default defineConfig({
  base: "/static/",
  plugins: [maplibreWorker()],
  build: {
    outDir: "../src/yizhangtu/web/static",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    chunkSizeWarningLimit: 2000,
    reportCompressedSize: false,
    modulePreload: { polyfill: false },
    rollupOptions: {
      output: {
        entryFileNames: "assets/[name].js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
        manualChunks(id) {
          if (id.includes("node_modules/maplibre-gl")) return "maplibre";
          if (id.includes("node_modules/echarts") || id.includes("node_modules/zrender")) return "echarts";
          if (id.includes("node_modules/geographiclib")) return "geodesic";
          return undefined;
        },
      },
    },
  },
});
