// Starts GraphiQL with the explorer plugin on this page. It was an inline script in
// strawberry's page; served as a file from this host, the page's Content-Security-Policy can
// refuse every inline script. Queries go to the address the page itself was served from.
(function () {
  "use strict";

  const EXAMPLE_QUERY = `# healthgraph: which connections to third-party systems work.
#
# Press the play button (or Ctrl-Enter) to run this query. Without the demo's
# anonymous reads, add a header: {"Authorization": "Bearer <token>"} below.
{
  overview {
    consumers
    activeConnections
    failedConnections
  }
}
`;

  // Parameters of the page's own URL, so a query can be shared as a link.
  const parameters = {};
  for (const entry of window.location.search.slice(1).split("&")) {
    const eq = entry.indexOf("=");
    if (eq >= 0) {
      parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(
        entry.slice(eq + 1),
      );
    }
  }

  function updateURL(data) {
    Object.assign(parameters, data);
    const search =
      "?" +
      Object.keys(parameters)
        .filter((key) => Boolean(parameters[key]))
        .map((key) => encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]))
        .join("&");
    history.replaceState(null, "", search);
  }

  const fetchURL = window.location.href.split("?")[0];
  const subscriptionURL = new URL(fetchURL);
  subscriptionURL.protocol = subscriptionURL.protocol === "https:" ? "wss:" : "ws:";
  subscriptionURL.hash = "";

  const fetcher = GraphiQL.createFetcher({
    url: fetchURL,
    subscriptionUrl: subscriptionURL.toString(),
  });

  function GraphiQLWithExplorer() {
    const [query, setQuery] = React.useState(parameters.q || EXAMPLE_QUERY);
    const [variables, setVariables] = React.useState(parameters.variables);
    const [headers, setHeaders] = React.useState(parameters.headers);
    const explorerPlugin = React.useMemo(() => GraphiQLPluginExplorer.explorerPlugin(), []);

    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      plugins: [explorerPlugin],
      query: query,
      variables: variables,
      headers: headers,
      onEditQuery: (value) => {
        setQuery(value);
        updateURL({ q: value });
      },
      onEditVariables: (value) => {
        setVariables(value);
        updateURL({ variables: value });
      },
      onEditHeaders: setHeaders,
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQLWithExplorer),
  );
})();
