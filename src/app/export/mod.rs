mod run;

pub use run::run;
