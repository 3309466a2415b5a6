"""End-to-end quality measurements over labelled data sets (`vestis eval ...`): they run the vision
stages, and for retrieval the index and the query parser too, so they stand on the top floor beside
`bench/`. The per-label metric code they use stays with the models (`vision/evaluation/`)."""
