"""The console's pages, one module per part of the menu; `console.router` assembles them."""
