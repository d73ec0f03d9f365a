//! Live performance: a deployed model's metrics on freshly labelled data, compared with the
//! metrics its gate verdict recorded when it was promoted.
